"""Ids beyond the database's integers are bad input (404 in a URL, 422 in a body), never a 500."""

from app.extensions import db


def test_huge_ids_are_bad_input_not_crashes(user_client, token_for, user, client):
    big = 2**40
    assert user_client.get(f"/mail/{big}").status_code == 404
    assert user_client.get(f"/org/posts/{big}").status_code == 404
    resp = client.post("/api/v1/notifications/read", json={"ids": [big]},
                       headers={"Authorization": f"Bearer {token_for(user)}"})
    if db.engine.dialect.name == "postgresql":  # SQLite integers hold it: nothing matches
        assert resp.status_code == 422
        assert resp.get_json()["error"]["message"] == "A value is out of range."
    else:
        assert resp.status_code == 200 and resp.get_json()["changed"] == 0
