"""Signing in and out, the login rate limit, CSRF, sign-in required everywhere."""

from __future__ import annotations

from sqlalchemy import select

from app.core.models import AuditEvent
from tests.conftest import PASSWORD


def test_sign_in_opens_the_home_page_and_records_it(client, user, db):
    resp = client.sign_in(user.email)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "Ivan Petrov" in page
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.sign_in",
                                                      AuditEvent.actor_id == user.id))
    assert user.last_login_at is not None


def test_wrong_password_and_unknown_user_get_the_same_answer(client, user):
    wrong = client.sign_in(user.email, "not-the-password-1")
    unknown = client.sign_in("nobody@example.test", "not-the-password-1")
    assert wrong.status_code == unknown.status_code == 401
    msg_wrong = wrong.get_data(as_text=True)
    msg_unknown = unknown.get_data(as_text=True)
    assert "Wrong e-mail or password." in msg_wrong and "Wrong e-mail or password." in msg_unknown
    assert client.get("/").status_code == 302  # still signed out


def test_eleventh_attempt_in_a_minute_is_refused(client, user):
    codes = [client.sign_in(user.email, f"wrong-password-{i}").status_code for i in range(10)]
    assert codes == [401] * 10
    # Even the right password is refused now: the account is being guessed at.
    assert client.sign_in(user.email).status_code == 429


def test_limit_is_per_account_across_addresses(app, user):
    for i in range(10):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"10.0.0.{i + 1}"
        assert c.sign_in(user.email, "wrong-password-x").status_code == 401
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.1.1"
    assert other.sign_in(user.email).status_code == 429


def test_limit_is_per_address_across_accounts(client, make_user):
    people = [make_user() for _ in range(11)]
    for p in people[:10]:
        assert client.sign_in(p.email, "wrong-password-x").status_code == 401
    assert client.sign_in(people[10].email).status_code == 429


def test_deactivated_account_cannot_sign_in(client, make_user):
    gone = make_user(active=False)
    resp = client.sign_in(gone.email)
    assert resp.status_code == 401
    assert "Wrong e-mail or password." in resp.get_data(as_text=True)


def test_deactivation_ends_a_running_session(app, admin_client, make_user, db):
    person = make_user()
    c = app.test_client()
    c.sign_in(person.email)
    assert c.get("/").status_code == 200
    admin_client.form(f"/admin/users/{person.id}/active", {"active": "0"})
    assert c.get("/").status_code == 302


def test_form_without_csrf_token_is_refused(client, user):
    client.get("/login")
    resp = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 400
    assert "form has expired" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_every_page_needs_sign_in(client, app):
    public = {"core.login", "core.health", "core.language", "static"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in public or rule.rule.startswith("/api/") or "GET" not in rule.methods:
            continue
        url = rule.rule.replace("<int:", "<").replace("<path:", "<")
        url = url.replace("<attachment_id>", "1").replace("<user_id>", "1").replace(
            "<token_id>", "1")
        if "<" in url:
            continue
        resp = client.get(url)
        assert resp.status_code in (302, 401), url
        if resp.status_code == 302:
            assert "/login" in resp.headers["Location"], url


def test_sign_out(user_client):
    assert user_client.get("/").status_code == 200
    resp = user_client.form("/logout", {"csrf_token": user_client.csrf("/")})
    assert resp.status_code == 302
    assert user_client.get("/").status_code == 302


def test_next_parameter_cannot_leave_the_site(client, user):
    client.get("/login")
    resp = client.post("/login?next=//evil.example/x",
                       data={"email": user.email, "password": PASSWORD,
                             "csrf_token": client.csrf()})
    assert resp.headers["Location"] == "/"


def test_session_cookie_flags(client, user):
    resp = client.sign_in(user.email)
    cookie = resp.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_carry_security_headers(client):
    resp = client.get("/login")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
