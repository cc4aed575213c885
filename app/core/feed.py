"""Each person's feed of changes, numbered in commit order, for live clients that reconnect.

Services `publish` events; just before the transaction commits, the events get the next
numbers of each person's feed under a row lock on that person's cursor, so a transaction
that numbers after another also commits after it. A client that saw event n and asks for
the events after n therefore gets every later one, in order, once. Row ids are not used:
an id is taken before commit, and a lower id can commit after a higher one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, event, insert, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.core.clock import utcnow
from app.core.jobs import job
from app.core.models import FeedCursor, FeedEvent, UTCDateTime
from app.core.realtime import emit_batch, on_commit, pending_list, user_room
from app.extensions import db

_KEY = "crm_feed"
SYNC_LIMIT = 500
KEEP = timedelta(days=30)


# On PostgreSQL the numbers and the events of a commit go in as an array and a JSON document:
# one short statement each, whatever the number of people (a message to 200 people is not 200
# INSERTs, nor one statement of 1,000 parameters to parse). Cursors are locked in user id order.
_PG_NUMBER = text(
    "INSERT INTO feed_cursor (user_id, last_seq)"
    " SELECT user_id, n FROM unnest(CAST(:users AS integer[]), CAST(:counts AS bigint[]))"
    " AS t (user_id, n) ORDER BY user_id"
    " ON CONFLICT (user_id) DO UPDATE SET last_seq = feed_cursor.last_seq + excluded.last_seq"
    " RETURNING user_id, last_seq")
_PG_STORE = text(
    "INSERT INTO feed_event (user_id, seq, kind, payload, created_at)"
    " SELECT user_id, seq, kind, payload, CAST(:created_at AS timestamptz)"
    " FROM json_to_recordset(CAST(:rows AS json)) AS t (user_id integer, seq bigint,"
    " kind varchar, payload json)",
).bindparams(bindparam("created_at", type_=UTCDateTime))

_counters: dict[str, Callable[[list[int]], dict[int, int]]] = {}


def register_counter(name: str, count: Callable[[list[int]], dict[int, int]]) -> None:
    """A badge (unread mail, open tasks...) sent with every event: counted after the cursor
    lock, so it includes every transaction committed before this one and none after."""
    _counters[name] = count


def publish(user_id: int, kind: str, payload: dict) -> None:
    """Queue an event for one person; it is numbered and stored when the transaction commits."""
    db.session.info.setdefault(_KEY, []).append((user_id, kind, payload))


def publish_many(user_ids, kind: str, payload: dict) -> None:
    for uid in user_ids:
        publish(uid, kind, payload)


pending_list(_KEY)


@event.listens_for(Session, "before_commit")
def _number_and_store(sess: Session) -> None:
    if sess.in_nested_transaction():  # a savepoint: number at the real commit
        return
    pending = sess.info.pop(_KEY, None)
    if not pending:
        return
    by_user: dict[int, list[tuple[str, dict]]] = defaultdict(list)
    for uid, kind, payload in pending:
        by_user[uid].append((kind, payload))
    users = sorted(by_user)
    conn = sess.connection()
    postgres = conn.dialect.name == "postgresql"
    # One statement takes the numbers: each person's cursor is created or moved on by the
    # count of their events, and its row stays locked until the commit. Rows are locked in
    # one order (by user id), so two transactions never wait on each other in a ring.
    if postgres:
        last = dict(conn.execute(_PG_NUMBER, {"users": users,
                                              "counts": [len(by_user[u]) for u in users]}).all())
    else:
        upsert = sqlite_insert(FeedCursor)
        upsert = upsert.on_conflict_do_update(
            index_elements=[FeedCursor.user_id],
            set_={"last_seq": FeedCursor.last_seq + upsert.excluded.last_seq},
        ).returning(FeedCursor.user_id, FeedCursor.last_seq)
        last = dict(conn.execute(upsert, [{"user_id": u, "last_seq": len(by_user[u])}
                                          for u in users]).all())
    sess.flush()  # the counters must see this transaction's own changes
    badges = {name: count(users) for name, count in _counters.items()}
    rows = []
    for uid in users:
        events = by_user[uid]
        seq = last[uid] - len(events)
        counts = {name: found.get(uid, 0) for name, found in badges.items()}
        for kind, payload in events:
            seq += 1
            rows.append({"user_id": uid, "seq": seq, "kind": kind,
                         "payload": {**payload, "counts": counts} if counts else payload})
    if postgres:
        conn.execute(_PG_STORE, {"rows": json.dumps(rows), "created_at": utcnow()})
    else:
        conn.execute(insert(FeedEvent), rows)
    on_commit(lambda: _emit(rows))


def _emit(rows: list[dict]) -> None:
    """Every event of the transaction at once: one message on the queue between processes."""
    emit_batch((user_room(row["user_id"]), "feed", _wire(row)) for row in rows)


def _wire(row) -> dict:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {"seq": get("seq"), "kind": get("kind"), "payload": get("payload")}


def last_seq(user_id: int) -> int:
    return db.session.scalar(select(FeedCursor.last_seq).where(FeedCursor.user_id == user_id)) or 0


def since(user_id: int, after: int, limit: int = SYNC_LIMIT) -> dict:
    """Events after the given number, oldest first; `more` when the client should ask again.
    `reset` when the client's number is older than what is kept: it must reload instead."""
    last = last_seq(user_id)  # read first: events up to it are committed, kept or pruned
    rows = db.session.scalars(
        select(FeedEvent).where(FeedEvent.user_id == user_id, FeedEvent.seq > after)
        .order_by(FeedEvent.seq).limit(limit + 1)).all()
    first = rows[0].seq if rows else last + 1
    return {"events": [_wire(r) for r in rows[:limit]], "more": len(rows) > limit,
            "reset": first > after + 1, "last": max(last, rows[-1].seq if rows else 0)}


@job("prune_feed")
def prune(now: datetime) -> str:
    """Old events go; a client that was away longer reloads its page (`reset`)."""
    gone = db.session.execute(delete(FeedEvent).where(FeedEvent.created_at < now - KEEP)).rowcount
    db.session.commit()
    return f"removed {gone}"


def _sync(user, data: dict) -> dict:
    from app.core.errors import ValidationError

    after = data.get("after")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ValidationError("after: a number of the last event seen is required.",
                              {"after": ["Not a valid integer."]})
    return since(user.id, after)


def register_socket_events() -> None:
    from app.core.realtime import socket_event

    socket_event("feed.sync")(_sync)
