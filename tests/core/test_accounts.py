"""Own account (profile, language, time zone, password) and administration of accounts."""

from __future__ import annotations

from sqlalchemy import func, select

from app.core.models import AuditEvent, Notification, User
from app.core.passwords import verify_password
from tests.conftest import PASSWORD


def test_profile_change_is_saved_and_audited(user_client, user, db):
    resp = user_client.form("/account", {"name": "Ivan P.", "language": "ru",
                                         "timezone": "Europe/Moscow"})
    assert resp.status_code == 302
    assert (user.name, user.language, user.timezone) == ("Ivan P.", "ru", "Europe/Moscow")
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.profile"))
    assert ev.before["name"] == "Ivan Petrov" and ev.after["name"] == "Ivan P."


def test_profile_with_bad_values_changes_nothing(user_client, user):
    resp = user_client.form("/account", {"name": "", "language": "xx", "timezone": "Mars/Base"})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "Unknown language." in page and "Unknown time zone." in page
    assert 'aria-invalid="true"' in page
    assert (user.name, user.language, user.timezone) == ("Ivan Petrov", "en", "UTC")


def test_language_switch_shows_pages_in_russian(user_client, user):
    user_client.form("/language", {"language": "ru", "next": "/account"})
    assert user.language == "ru"
    page = user_client.get("/account").get_data(as_text=True)
    assert "Часовой пояс" in page and 'lang="ru"' in page


def test_language_switch_before_sign_in(client):
    client.form("/language", {"language": "ru", "next": "/login"})
    assert "Войти" in client.get("/login").get_data(as_text=True)


def test_times_are_shown_in_the_users_zone(user_client, user, db):
    from datetime import UTC, datetime

    from app.core import notifications

    n = notifications.notify(user.id, "test", "Zone check")
    n.created_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    user.timezone = "Asia/Vladivostok"  # UTC+10
    db.session.commit()
    page = user_client.get("/notifications").get_data(as_text=True)
    assert "7:30" in page  # 19:30 local, medium format "7:30:00 PM"


def test_change_password(user_client, user):
    resp = user_client.form("/account/password", {"current_password": PASSWORD,
                                                  "new_password": "a-much-better-one-77"})
    assert resp.status_code == 302
    assert verify_password(user.password_hash, "a-much-better-one-77")


def test_password_policy(user_client, user):
    for bad, reason in [("short1", "at least 10"), ("password123", "too common"),
                        (user.email, "e-mail")]:
        resp = user_client.form("/account/password", {"current_password": PASSWORD,
                                                      "new_password": bad})
        assert resp.status_code == 422
        assert reason in resp.get_data(as_text=True)
    resp = user_client.form("/account/password", {"current_password": "wrong-one-123456",
                                                  "new_password": "a-much-better-one-77"})
    assert "The current password is wrong." in resp.get_data(as_text=True)
    assert verify_password(user.password_hash, PASSWORD)


def test_admin_creates_an_account_that_can_sign_in(app, admin_client, admin, db):
    resp = admin_client.form("/admin/users/new", {
        "name": "Maria New", "email": "Maria@Example.test", "password": "fresh-start-2026x",
        "language": "ru", "timezone": "Europe/Moscow"})
    assert resp.status_code == 302
    maria = db.session.scalar(select(User).where(User.email == "maria@example.test"))
    assert maria.language == "ru" and not maria.is_admin
    assert db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "user.create", AuditEvent.entity_id == str(maria.id),
        AuditEvent.actor_id == admin.id))
    assert app.test_client().sign_in("maria@example.test", "fresh-start-2026x").status_code == 302


def test_duplicate_email_is_refused(admin_client, user, db):
    before = db.session.scalar(select(func.count(User.id)))
    resp = admin_client.form("/admin/users/new", {
        "name": "Twin", "email": user.email.upper(), "password": "fresh-start-2026x"})
    assert resp.status_code == 409
    assert "Already in use." in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count(User.id))) == before


def test_admin_edits_deactivates_and_resets(app, admin_client, user, db):
    admin_client.form(f"/admin/users/{user.id}", {"name": "Ivan Renamed", "email": user.email,
                                                  "language": "en", "timezone": "UTC"})
    assert user.name == "Ivan Renamed"
    admin_client.form(f"/admin/users/{user.id}/password", {"password": "reset-by-admin-99"})
    assert verify_password(user.password_hash, "reset-by-admin-99")
    assert db.session.scalar(select(Notification).where(Notification.user_id == user.id,
                                                        Notification.kind == "security"))
    admin_client.form(f"/admin/users/{user.id}/active", {"active": "0"})
    assert user.active is False
    assert app.test_client().sign_in(user.email, "reset-by-admin-99").status_code == 401
    assert db.session.get(User, user.id) is not None  # the data stays
    actions = set(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.entity_id == str(user.id))))
    assert {"user.update", "user.password_reset", "user.deactivate"} <= actions
    admin_client.form(f"/admin/users/{user.id}/active", {"active": "1"})
    assert user.active is True


def test_admin_cannot_lock_themselves_out(admin_client, admin):
    resp = admin_client.form(f"/admin/users/{admin.id}/active", {"active": "0"})
    assert resp.status_code == 422
    assert admin.active


def test_employees_cannot_administer(user_client, make_user):
    other = make_user()
    assert user_client.get("/admin/users").status_code == 403
    assert user_client.get("/admin/audit").status_code == 403
    assert user_client.form(f"/admin/users/{other.id}/active", {"active": "0"}).status_code == 403
    assert other.active


def test_user_list_searches_and_paginates(admin_client, make_user):
    for i in range(30):
        make_user(f"Searchable {i:02d}")
    page1 = admin_client.get("/admin/users?q=searchable").get_data(as_text=True)
    assert "Searchable 00" in page1 and "Searchable 29" not in page1 and "30 in all" in page1
    page2 = admin_client.get("/admin/users?q=searchable&page=2").get_data(as_text=True)
    assert "Searchable 29" in page2


def test_password_change_signs_out_other_browsers(app, user_client, user):
    other = app.test_client()
    other.sign_in(user.email)
    assert other.get("/account").status_code == 200
    user_client.form("/account/password", {"current_password": PASSWORD,
                                           "new_password": "a-much-better-one-77"})
    assert user_client.get("/account").status_code == 200  # this browser stays in
    assert other.get("/account").status_code == 302  # the other is signed out


def test_admin_reset_signs_the_person_out(app, admin_client, user_client, user):
    admin_client.form(f"/admin/users/{user.id}/password", {"password": "reset-by-admin-99"})
    assert user_client.get("/account").status_code == 302


def test_password_guessing_on_the_change_form_is_limited(user_client):
    codes = [user_client.form("/account/password", {
        "current_password": f"guess-number-{i}", "new_password": "a-much-better-one-77"}
    ).status_code for i in range(11)]
    assert codes[:10] == [422] * 10 and codes[10] == 429


def test_user_search_folds_cyrillic(admin_client, make_user):
    make_user("Иван Грозный")
    page = admin_client.get("/admin/users?q=иван").get_data(as_text=True)
    assert "Иван Грозный" in page
    page = admin_client.get("/admin/users?q=%25").get_data(as_text=True)
    assert "Nobody matches." in page  # % is a character, not a wildcard


def test_create_admin_command(app, db):
    from click.testing import CliRunner

    runner = CliRunner()
    args = ["crm", "create-admin", "--email", "Root@Example.test", "--name", "Root",
            "--password", "first-admin-pass-1"]
    assert "created" in runner.invoke(app.cli, args).output
    root = db.session.scalar(select(User).where(User.email == "root@example.test"))
    assert root.is_admin
    again = runner.invoke(app.cli, args)
    assert again.exit_code != 0 and "already exists" in again.output
    weak = runner.invoke(app.cli, ["crm", "create-admin", "--email", "x@example.test",
                                   "--name", "X", "--password", "password"])
    assert weak.exit_code != 0 and "at least 10" in weak.output
