"""Each person's feed: numbered per person in commit order, re-read after a reconnect."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app.core import clock, feed
from app.core.models import FeedCursor, FeedEvent
from app.extensions import db
from app.messaging import services as mail
from tests.conftest import REDIS_URL, seed_user
from tests.core.test_realtime import client_for, cookie_header, sign_in


def seqs(user_id: int, after: int = 0) -> list[tuple[int, str]]:
    return [(e["seq"], e["kind"]) for e in feed.since(user_id, after)["events"]]


def test_events_get_consecutive_numbers_per_person(user, make_user):
    other = make_user()
    feed.publish(user.id, "a", {"n": 1})
    feed.publish(other.id, "a", {"n": 1})
    feed.publish(user.id, "b", {"n": 2})
    db.session.commit()
    feed.publish_many([user.id, other.id], "c", {"n": 3})
    db.session.commit()
    assert seqs(user.id) == [(1, "a"), (2, "b"), (3, "c")]
    assert seqs(other.id) == [(1, "a"), (2, "c")]
    assert feed.last_seq(user.id) == 3 and feed.last_seq(other.id) == 2
    assert [e["payload"]["n"] for e in feed.since(user.id, 0)["events"]] == [1, 2, 3]


def test_since_returns_later_events_in_order(user):
    for n in range(5):
        feed.publish(user.id, f"k{n}", {"n": n})
        db.session.commit()
    found = feed.since(user.id, 2)
    assert [(e["seq"], e["payload"]["n"]) for e in found["events"]] == [(3, 2), (4, 3), (5, 4)]
    assert found["more"] is False and found["reset"] is False and found["last"] == 5
    assert feed.since(user.id, 5) == {"events": [], "more": False, "reset": False, "last": 5}


def test_nobody_else_sees_a_persons_events(user, make_user):
    other = make_user()
    feed.publish(user.id, "private", {"secret": 1})
    db.session.commit()
    assert feed.since(other.id, 0) == {"events": [], "more": False, "reset": False, "last": 0}


def test_more_pages_through_every_event_once(user):
    feed.publish_many([user.id] * 7, "x", {})
    db.session.commit()
    first = feed.since(user.id, 0, limit=3)
    assert [e["seq"] for e in first["events"]] == [1, 2, 3] and first["more"] is True
    got, after, pages = [], 0, 0
    while True:
        page = feed.since(user.id, after, limit=3)
        got += [e["seq"] for e in page["events"]]
        after, pages = got[-1], pages + 1
        if not page["more"]:
            break
    assert got == [1, 2, 3, 4, 5, 6, 7] and pages == 3


def test_pruned_events_tell_the_client_to_reload(user):
    clock.freeze(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    feed.publish_many([user.id] * 3, "old", {})
    db.session.commit()
    clock.advance(feed.KEEP + timedelta(days=1))
    feed.publish_many([user.id] * 2, "new", {})
    db.session.commit()
    assert feed.prune(clock.utcnow()) == "removed 3"
    assert db.session.scalar(select(func.count()).select_from(FeedEvent)
                             .where(FeedEvent.user_id == user.id)) == 2
    stale = feed.since(user.id, 1)  # events 2 and 3 are gone: this client must reload
    assert stale["reset"] is True and [e["seq"] for e in stale["events"]] == [4, 5]
    assert stale["last"] == 5
    current = feed.since(user.id, 3)  # saw everything that was pruned: nothing missed
    assert current["reset"] is False and [e["seq"] for e in current["events"]] == [4, 5]
    assert feed.since(user.id, 5)["reset"] is False


def test_a_client_behind_pruned_events_reloads_even_when_nothing_is_newer(user):
    clock.freeze(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    feed.publish_many([user.id] * 3, "old", {})
    db.session.commit()
    clock.advance(feed.KEEP + timedelta(days=1))
    feed.prune(clock.utcnow())
    assert feed.since(user.id, 1) == {"events": [], "more": False, "reset": True, "last": 3}
    assert feed.since(user.id, 3) == {"events": [], "more": False, "reset": False, "last": 3}


def test_numbers_continue_after_pruning(user):
    clock.freeze(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    feed.publish_many([user.id] * 2, "old", {})
    db.session.commit()
    clock.advance(feed.KEEP + timedelta(days=1))
    feed.prune(clock.utcnow())
    feed.publish(user.id, "after", {})
    db.session.commit()
    assert seqs(user.id) == [(3, "after")]


def test_a_rolled_back_transaction_publishes_nothing_and_takes_no_number(user):
    feed.publish(user.id, "kept", {})
    db.session.commit()
    feed.publish(user.id, "lost", {})
    feed.publish(user.id, "lost", {})
    db.session.rollback()
    db.session.commit()  # an empty commit numbers nothing left over
    feed.publish(user.id, "next", {})
    db.session.commit()
    assert seqs(user.id) == [(1, "kept"), (2, "next")]
    assert db.session.get(FeedCursor, user.id).last_seq == 2


def test_a_failed_commit_stores_nothing_and_takes_no_number(user):
    feed.publish(user.id, "kept", {})
    db.session.commit()
    feed.publish(user.id, "lost", {})
    feed.publish(999_999_999, "lost", {})  # no such person: the commit fails
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()
    feed.publish(user.id, "next", {})
    db.session.commit()
    assert seqs(user.id) == [(1, "kept"), (2, "next")]


def test_every_event_carries_the_unread_badge(user, make_user):
    sender = make_user("Sender")
    first = mail.send(sender, {"to": [f"user:{user.id}"], "subject": "One"})
    db.session.commit()
    mail.send(sender, {"to": [f"user:{user.id}"], "subject": "Two"})
    db.session.commit()
    mail.mark_read(user, {"ids": [first.id]})
    db.session.commit()
    events = feed.since(user.id, 0)["events"]  # other modules' badges ride along: not checked here
    assert [(e["kind"], e["payload"]["counts"]["mail_unread"]) for e in events] == [
        ("message.new", 1), ("message.new", 2), ("message.read", 1)]
    sent = feed.since(sender.id, 0)["events"]
    assert [e["kind"] for e in sent] == ["message.new", "message.new", "message.receipt"]
    assert all(e["payload"]["counts"]["mail_unread"] == 0 for e in sent)
    feed.publish(user.id, "other", {"x": 1})
    db.session.commit()
    other = feed.since(user.id, 3)["events"][0]["payload"]
    assert other["x"] == 1 and other["counts"]["mail_unread"] == 1
    assert set(other) == {"x", "counts"} and set(other["counts"]) == set(feed._counters)


def test_a_registered_badge_is_counted_per_person(user, make_user):
    other = make_user()
    feed.register_counter("test_badge", lambda ids: {uid: uid * 10 for uid in ids})
    try:
        feed.publish_many([user.id, other.id], "x", {})
        db.session.commit()
    finally:
        feed._counters.pop("test_badge")
    assert feed.since(user.id, 0)["events"][0]["payload"]["counts"]["test_badge"] == user.id * 10
    assert feed.since(other.id, 0)["events"][0]["payload"]["counts"]["test_badge"] == other.id * 10


@pytest.mark.live
def test_feed_sync_over_the_socket_answers_bad_input_with_an_error(live_server):
    person = seed_user("Syncer", "syncer@example.test")
    feed.publish_many([person.id] * 3, "x", {})
    db.session.commit()
    db.session.close()
    sio, _events = client_for(live_server.url, cookie=cookie_header(sign_in(live_server.url,
                                                                            person.email)))
    try:
        for bad in ({}, {"after": -1}, {"after": "2"}, {"after": 1.5}, {"after": True},
                    {"after": None}, None, "after", [1]):
            answer = sio.call("feed.sync", bad, timeout=5)
            assert answer["error"]["code"] == "validation_error", bad
            assert "after" in answer["error"]["fields"]
        answer = sio.call("feed.sync", {"after": 1}, timeout=5)
        assert [e["seq"] for e in answer["events"]] == [2, 3]
        assert answer["more"] is False and answer["reset"] is False and answer["last"] == 3
    finally:
        sio.disconnect()
    assert feed.last_seq(person.id) == 3  # asking changed nothing
    db.session.close()


# --- commit order under real concurrency -------------------------------------------------

class HeldCommit:
    """Holds one chosen session's commit open after the feed has numbered its events
    (a before_commit listener registered after the feed's runs after it)."""

    def __init__(self):
        self.numbered = threading.Event()
        self.release = threading.Event()
        self.order: list[str] = []

    def before_commit(self, sess: Session) -> None:
        if sess.info.get("hold"):
            self.numbered.set()
            assert self.release.wait(30), "the test never released the held commit"

    def after_commit(self, sess: Session) -> None:
        if "name" in sess.info:
            self.order.append(sess.info["name"])

    def __enter__(self):
        event.listen(Session, "before_commit", self.before_commit)
        event.listen(Session, "after_commit", self.after_commit)
        return self

    def __exit__(self, *exc):
        self.release.set()
        event.remove(Session, "before_commit", self.before_commit)
        event.remove(Session, "after_commit", self.after_commit)


def _in_thread(app, fn) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run():
        with app.app_context():
            try:
                out["result"] = fn()
            except BaseException as exc:  # reported by the test
                out["error"] = exc
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _waiting_on_a_lock(pid: int) -> bool:
    return db.session.execute(
        sa.text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted"),
        {"pid": pid}).scalar() > 0


@pytest.mark.live
def test_numbers_follow_commit_order_of_concurrent_transactions(app):
    """T1 has numbered its event for U and not yet committed; T2's numbering for U waits for
    T1's commit, so T2 gets the next number even though it began first."""
    person = seed_user("Contended", "contended@example.test")
    bystander = seed_user("Bystander", "bystander@example.test")
    feed.publish(person.id, "before", {})
    db.session.commit()
    db.session.close()
    postgres = db.engine.dialect.name == "postgresql"
    t2_began, t2_go, t2_pid = threading.Event(), threading.Event(), {}

    with HeldCommit() as held:
        def second():
            db.session.info["name"] = "T2"
            if postgres:  # T2 begins before T1 (on SQLite a transaction holds the file)
                t2_pid["pid"] = db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar()
                feed.publish(bystander.id, "t2", {})
            t2_began.set()
            assert t2_go.wait(30)
            feed.publish(person.id, "t2", {})
            db.session.commit()

        def first():
            db.session.info.update(name="T1", hold=True)
            feed.publish(person.id, "t1", {})
            db.session.commit()

        t2, out2 = _in_thread(app, second)
        assert t2_began.wait(10)
        t1, out1 = _in_thread(app, first)
        assert held.numbered.wait(10), out1
        t2_go.set()
        if postgres:
            end = time.monotonic() + 10
            while not _waiting_on_a_lock(t2_pid["pid"]):
                assert time.monotonic() < end, "T2 never waited for T1's cursor lock"
                time.sleep(0.02)
            db.session.close()
            assert t2.is_alive()  # still waiting while T1 holds the cursor row
        held.release.set()
        t1.join(10)
        t2.join(10)
        assert "error" not in out1 and "error" not in out2, (out1, out2)

    assert held.order == ["T1", "T2"]
    assert seqs(person.id) == [(1, "before"), (2, "t1"), (3, "t2")]
    rows = db.session.execute(select(FeedEvent.seq, FeedEvent.kind).where(
        FeedEvent.user_id == person.id).order_by(FeedEvent.seq)).all()
    assert [tuple(r) for r in rows] == [(1, "before"), (2, "t1"), (3, "t2")]
    db.session.close()


@pytest.mark.live
def test_many_concurrent_transactions_number_one_persons_feed_without_gaps(app):
    person = seed_user("Busy", "busy-feed@example.test")
    others = [seed_user(f"Other {n}", f"other-feed-{n}@example.test") for n in range(3)]
    start = threading.Barrier(8)

    def writer(n: int):
        start.wait(10)
        for k in range(10):
            # Each transaction touches the person and one other, locked in id order.
            feed.publish(others[(n + k) % 3].id, "x", {"w": n, "k": k})
            feed.publish(person.id, "x", {"w": n, "k": k})
            db.session.commit()

    threads = [_in_thread(app, lambda n=n: writer(n)) for n in range(8)]
    for thread, out in threads:
        thread.join(60)
        assert not thread.is_alive() and "error" not in out, out
    events = feed.since(person.id, 0)["events"]
    assert [e["seq"] for e in events] == list(range(1, 81))
    for n in range(8):  # each writer's own events in the order it committed them
        assert [e["payload"]["k"] for e in events if e["payload"]["w"] == n] == list(range(10))
    assert sum(feed.last_seq(o.id) for o in others) == 80
    db.session.close()


# --- emits after commit -------------------------------------------------------------------

def _subscribe(channel: str):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    sub = client.pubsub()
    sub.subscribe(channel)
    end = time.monotonic() + 5
    while (message := sub.get_message(timeout=0.5)) is None or message["type"] != "subscribe":
        assert time.monotonic() < end, "no subscription to the queue"
    return client, sub


def _drain(sub, seconds: float) -> list[dict]:
    found, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        message = sub.get_message(timeout=0.1)
        if message is not None and message["type"] == "message":
            found.append(json.loads(message["data"]))
    return found


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL for the Socket.IO message queue")
def test_a_commit_is_one_message_on_the_queue_however_many_people_it_reaches(app, user,
                                                                              make_user):
    others = [make_user() for _ in range(4)]
    client, sub = _subscribe(f"{app.config['REDIS_KEY_PREFIX']}:socketio")
    try:
        feed.publish_many([user.id, *(o.id for o in others)], "x", {"n": 1})
        feed.publish(user.id, "y", {"n": 2})
        db.session.commit()
        feed.publish(user.id, "lost", {})  # rolled back: never on the queue
        db.session.rollback()
        db.session.commit()
        queued = _drain(sub, 0.5)
    finally:
        sub.close()
        client.close()
    assert len(queued) == 1, queued
    batch = queued[0]
    assert batch["method"] == "crm_emit_batch" and batch["namespace"] == "/"
    got = sorted((room, event, data["seq"], data["kind"], data["payload"]["n"])
                 for room, event, data in batch["items"])
    assert got == sorted([(f"user:{user.id}", "feed", 1, "x", 1), (f"user:{user.id}", "feed", 2, "y", 2)]
                         + [(f"user:{o.id}", "feed", 1, "x", 1) for o in others])
    # what the queue carried is what a client that syncs gets
    assert [e for r, _e, e in batch["items"] if r == f"user:{user.id}"] == feed.since(user.id, 0)["events"]


def test_without_a_queue_each_event_is_emitted_to_its_persons_room(monkeypatch, user, make_user):
    import socketio as python_socketio

    from app.extensions import socketio

    other = make_user()
    emitted = []
    monkeypatch.setattr(socketio.server, "manager", python_socketio.Manager())
    monkeypatch.setattr(socketio, "emit", lambda event, data, to: emitted.append((to, event, data)))
    feed.publish(user.id, "a", {})
    feed.publish(other.id, "a", {})
    feed.publish(user.id, "b", {})
    db.session.commit()
    assert sorted((to, event, data["seq"], data["kind"]) for to, event, data in emitted) == [
        (f"user:{user.id}", "feed", 1, "a"), (f"user:{user.id}", "feed", 2, "b"),
        (f"user:{other.id}", "feed", 1, "a")]
