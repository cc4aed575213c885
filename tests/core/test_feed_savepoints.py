"""Feed events follow savepoints: what a rolled-back savepoint published is never stored."""

from app.core import feed
from app.extensions import db


def test_savepoint_rollback_drops_its_events(user, make_user):
    other = make_user()
    feed.publish(user.id, "a", {})
    try:
        with db.session.begin_nested():
            feed.publish(user.id, "b", {})
            feed.publish(other.id, "b", {})
            raise RuntimeError
    except RuntimeError:
        pass
    with db.session.begin_nested():
        feed.publish(user.id, "c", {})
    db.session.commit()
    assert [e["kind"] for e in feed.since(user.id, 0)["events"]] == ["a", "c"]
    assert feed.since(other.id, 0)["events"] == []
