"""Personal API tokens and the JSON API under /api/v1."""

from __future__ import annotations

from sqlalchemy import select

from app.core.models import ApiToken


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_me_returns_the_caller(client, user, token_for):
    resp = client.get("/api/v1/me", headers=bearer(token_for(user)))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["email"] == user.email and body["name"] == "Ivan Petrov"
    assert "password_hash" not in body


def test_without_or_with_a_bad_token_is_401_json(client, user):
    for headers in ({}, bearer("crm_nonsense"), {"Authorization": "Basic abc"}, bearer("")):
        resp = client.get("/api/v1/me", headers=headers)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "unauthorized"


def test_a_session_cookie_is_not_enough_for_the_api(user_client):
    assert user_client.get("/api/v1/me").status_code == 401


def test_token_page_shows_the_secret_once_and_stores_only_a_hash(user_client, user, db, client):
    resp = user_client.form("/account/tokens", {"name": "Reports script"})
    page = resp.get_data(as_text=True)
    import re

    plain = re.search(r'data-testid="new-token">([^<]+)<', page).group(1)
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert row.name == "Reports script" and plain not in (row.token_hash, row.prefix)
    assert plain not in user_client.get("/account/tokens").get_data(as_text=True)
    assert client.get("/api/v1/me", headers=bearer(plain)).get_json()["id"] == user.id
    assert row.last_used_at is not None


def test_revoked_token_is_refused(client, user, token_for, db):
    plain = token_for(user)
    token_id = db.session.scalar(select(ApiToken.id).where(ApiToken.user_id == user.id))
    resp = client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(plain))
    assert resp.status_code == 200 and resp.get_json()["revoked_at"]
    assert client.get("/api/v1/me", headers=bearer(plain)).status_code == 401


def test_tokens_of_a_deactivated_user_stop_working(client, user, token_for, db):
    plain = token_for(user)
    user.active = False
    db.session.commit()
    assert client.get("/api/v1/me", headers=bearer(plain)).status_code == 401


def test_token_api_lists_creates_and_cannot_touch_others(client, user, make_user, token_for, db):
    plain = token_for(user)
    other = make_user()
    token_for(other)
    others_id = db.session.scalar(select(ApiToken.id).where(ApiToken.user_id == other.id))
    # a token cannot mint another (a leaked one would outlive its revocation)
    assert client.post("/api/v1/tokens", json={"name": "CI"}, headers=bearer(plain)
                       ).status_code == 405
    listed = client.get("/api/v1/tokens", headers=bearer(plain)).get_json()
    assert [t["name"] for t in listed] == ["test"] and "token_hash" not in listed[0]
    assert client.delete(f"/api/v1/tokens/{others_id}", headers=bearer(plain)).status_code == 404
    assert db.session.get(ApiToken, others_id).revoked_at is None


def test_bad_json_gets_field_errors(client, user, token_for):
    plain = token_for(user)
    resp = client.post("/api/v1/notifications/read", json={"ids": "x"}, headers=bearer(plain))
    assert resp.status_code == 422
    err = resp.get_json()["error"]
    assert err["code"] == "validation_error" and "ids" in err["fields"]
    resp = client.post("/api/v1/notifications/read", json={"all": "maybe"}, headers=bearer(plain))
    assert resp.status_code == 422 and "all" in resp.get_json()["error"]["fields"]
    resp = client.post("/api/v1/notifications/read", data="{not json", headers={
        **bearer(plain), "Content-Type": "application/json"})
    assert resp.status_code in (400, 422)
    assert "error" in resp.get_json()


def test_unknown_api_path_is_json_404(client):
    resp = client.get("/api/v1/nothing-here")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"


def test_openapi_document_describes_the_api(client, user_client):
    assert client.get("/api/v1/openapi.json").status_code == 401
    doc = user_client.get("/api/v1/openapi.json").get_json()
    assert doc["info"]["title"] == "CRM API"
    for path in ("/api/v1/me", "/api/v1/tokens", "/api/v1/users", "/api/v1/audit",
                 "/api/v1/attachments", "/api/v1/notifications"):
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_user_admin_api(client, admin, user, token_for):
    admin_token, user_token = token_for(admin), token_for(user)
    created = client.post("/api/v1/users", json={
        "email": "new@example.test", "name": "New Person", "password": "api-made-pass-42"},
        headers=bearer(admin_token))
    assert created.status_code == 201
    new_id = created.get_json()["id"]
    patched = client.patch(f"/api/v1/users/{new_id}", json={"active": False},
                           headers=bearer(admin_token))
    assert patched.get_json()["active"] is False
    listing = client.get("/api/v1/users?per_page=2", headers=bearer(admin_token)).get_json()
    assert listing["meta"]["per_page"] == 2 and listing["meta"]["total"] >= 3
    # an employee may not
    assert client.get("/api/v1/users", headers=bearer(user_token)).status_code == 403
    assert client.patch(f"/api/v1/users/{new_id}", json={"active": True},
                        headers=bearer(user_token)).status_code == 403
    assert client.post("/api/v1/users", json={"email": "x@example.test", "name": "X",
                                              "password": "api-made-pass-42"},
                       headers=bearer(user_token)).status_code == 403


def test_wrong_types_in_user_api(client, admin, token_for):
    t = token_for(admin)
    resp = client.post("/api/v1/users", json={"email": "not-an-email", "name": ["x"],
                                              "password": 5}, headers=bearer(t))
    assert resp.status_code == 422
    assert {"email", "name", "password"} <= set(resp.get_json()["error"]["fields"])
    assert client.get("/api/v1/users/999999", headers=bearer(t)).status_code == 404
