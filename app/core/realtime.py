"""Side effects after commit, and the authenticated Socket.IO channel.

Services never emit directly: they queue work with `on_commit`, and the
session's after_commit hook runs it, so a rolled-back change reaches no one.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable, Iterable

import socketio as python_socketio
from engineio import packet as engineio_packet
from flask import request, session
from flask_babel import gettext as _
from flask_login import current_user
from flask_socketio import join_room
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.core import presence
from app.extensions import db, socketio

log = logging.getLogger(__name__)
_KEY = "crm_on_commit"


def on_commit(action: Callable[[], None]) -> None:
    """Run `action` once the current transaction commits; drop it on rollback."""
    db.session.info.setdefault(_KEY, []).append(action)


def emit_to_user(user_id: int, event_name: str, payload: dict) -> None:
    on_commit(lambda: socketio.emit(event_name, payload, to=user_room(user_id)))


def emit_batch(items: Iterable[tuple[str, str, dict]]) -> None:
    """Emit each (room, event, data) now: through the message queue in one publish for them
    all when there is one, else to this process's clients."""
    items = list(items)
    manager = getattr(socketio.server, "manager", None)
    if isinstance(manager, BatchRedisManager):
        manager.emit_batch(items)
        return
    for room, event_name, data in items:
        socketio.emit(event_name, data, to=room)


class BatchRedisManager(python_socketio.RedisManager):
    """Redis as the Socket.IO message queue (JSON on the queue, never pickle), where a batch
    of emits is one publish: a commit that reaches 200 people is one message on the queue,
    not 200. Every process delivers each emit of a batch to its own clients in the room;
    the other kinds of message (single emits, room changes, disconnects) work as before."""

    BATCH = "crm_emit_batch"

    def emit_batch(self, items: list[tuple[str, str, dict]], namespace: str = "/") -> None:
        """Each (room, event, data) to every process; data is JSON (no bytes)."""
        batch = [[room, event_name, data] for room, event_name, data in items]
        if not batch:
            return
        # Published first, so the other processes deliver while this one does.
        self._publish({"method": self.BATCH, "host_id": self.host_id, "namespace": namespace,
                       "items": batch})
        self._deliver(namespace, batch)

    def _deliver(self, namespace: str, items: list) -> None:
        """To this process's sockets: every packet is encoded first, then all are handed to
        the sockets' writers in one go (as an emit to one large room is), so the writer
        threads do not wake and take turns with the encoding; rooms with no socket here are
        skipped unencoded."""
        ready = []
        for room, event_name, data in items:
            sids = [eio_sid for _sid, eio_sid in self.get_participants(namespace, room)]
            if not sids:
                continue
            encoded = self.server.packet_class(  # JSON: no search for binary parts
                python_socketio.packet.EVENT, namespace=namespace, data=[event_name, data],
                binary=False).encode()
            ready.append((sids, engineio_packet.Packet(engineio_packet.MESSAGE, encoded)))
        for sids, pkt in ready:
            for eio_sid in sids:
                self.server._send_eio_packet(eio_sid, pkt)

    def _listen(self):
        """Batches are delivered here; everything else goes on to the usual handling."""
        # This process's own batches come back too: known by how they begin, and not parsed.
        own = self.json.dumps({"method": self.BATCH, "host_id": self.host_id})[:-1].encode() + b","
        for message in super()._listen():
            if isinstance(message, bytes) and message.startswith(own):
                continue
            try:
                data = message if isinstance(message, dict) else self.json.loads(message)
            except ValueError:
                continue  # not JSON: nothing this queue sent
            if isinstance(data, dict) and data.get("method") == self.BATCH:
                if data.get("host_id") != self.host_id:
                    try:
                        self._deliver(data.get("namespace") or "/", data.get("items") or [])
                    except Exception:
                        log.exception("a batch of emits from the message queue failed")
                continue
            yield data


def message_queue(redis_url: str | None, prefix: str) -> BatchRedisManager | None:
    """The Socket.IO message queue of this installation: its channel carries the installation's
    prefix, so two installations sharing one Redis never reach each other's clients."""
    if not redis_url:
        return None
    return BatchRedisManager(redis_url, channel=f"{prefix}:socketio")


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


def login_room(login_id: str) -> str:
    return f"login:{login_id}"


@event.listens_for(Session, "after_commit")
def _run_on_commit(sess: Session) -> None:
    for action in sess.info.pop(_KEY, []):
        try:
            action()
        except Exception:  # a failed emit must not undo a committed change
            log.exception("after-commit action failed")


# Lists of work that must happen only if the transaction commits (after-commit actions here,
# feed events in app.core.feed). A savepoint that rolls back drops what was added inside it.
_PENDING = [_KEY]
_MARKS = "crm_savepoint_marks"


def pending_list(key: str) -> None:
    """Make session.info[key] a list that follows the transaction (see _PENDING)."""
    if key not in _PENDING:
        _PENDING.append(key)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(sess: Session, transaction) -> None:
    if transaction.nested:
        sess.info.setdefault(_MARKS, {})[transaction] = {
            k: len(sess.info.get(k, ())) for k in _PENDING}


@event.listens_for(Session, "after_soft_rollback")
def _drop_on_rollback(sess: Session, previous_transaction) -> None:
    if previous_transaction.nested:
        marks = sess.info.get(_MARKS, {}).pop(previous_transaction, None) or {}
        for k, length in marks.items():
            if k in sess.info:
                del sess.info[k][length:]
        return
    for k in _PENDING:
        sess.info.pop(k, None)
    sess.info.pop(_MARKS, None)


def token_room(token_id: int) -> str:
    return f"token:{token_id}"


@socketio.on("connect")
def _connect(auth=None):
    """Only signed-in users (session cookie) or token holders may connect."""
    from app.core import services

    user = current_user if current_user.is_authenticated else None
    if user is None and isinstance(auth, dict) and isinstance(auth.get("token"), str):
        token = services.live_token(auth["token"])
        if token is not None:
            user = token.user
            session["socket_user_id"] = user.id  # this socket's own session
            join_room(token_room(token.id))
    if user is None:
        db.session.rollback()
        raise ConnectionRefusedError("unauthorized")
    _no_delay()
    join_room(user_room(user.id))
    if session.get("login_id"):
        join_room(login_room(session["login_id"]))
    session["presence_user_id"] = user.id
    presence.seen(user.id, request.sid)
    db.session.commit()


def _no_delay() -> None:
    """Send each frame at once: an event and the answer after it are small writes, and with
    Nagle's algorithm the second waits for the client's delayed ACK (about 40 ms)."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@socketio.on("disconnect")
def _disconnect(*_args):
    user_id = session.get("presence_user_id")
    if user_id:
        presence.gone(user_id, request.sid)


@socketio.on("presence.ping")
def _presence_ping(data=None):
    """Every open tab reports every 30 s whether its person is active or away."""
    user = socket_user()
    if user is None:
        return {"error": {"code": "unauthorized", "message": "", "fields": {}}}
    state = data.get("state") if isinstance(data, dict) else None
    presence.seen(user.id, request.sid, state if state in presence.STATES else "active")
    ids = data.get("ids") if isinstance(data, dict) else None
    if isinstance(ids, list):
        return presence.of([i for i in ids[:500] if isinstance(i, int)])
    return {}


def socket_user():
    """The person behind this socket: the signed-in user, or the token's owner."""
    from app.core.models import User

    if current_user.is_authenticated:
        return current_user
    user_id = session.get("socket_user_id")
    user = db.session.get(User, user_id) if user_id else None
    return user if user is not None and user.is_active else None


def _error(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def socket_event(name: str):
    """Register a Socket.IO event handler that runs like a request: the signed-in user,
    one commit on success, a rollback and an error answer ({"error": {...}}) otherwise."""

    def register(fn):
        @functools.wraps(fn)
        def handler(data=None):
            from app.core.errors import DomainError

            try:
                user = socket_user()
                if user is None:
                    db.session.rollback()
                    return _error("unauthorized", _("Sign in again."))
                result = fn(user, data if isinstance(data, dict) else {})
                db.session.commit()
                return result
            except DomainError as exc:
                db.session.rollback()
                return _error(exc.code, exc.message, exc.fields)
            except Exception:
                db.session.rollback()
                log.exception("socket event %s failed", name)
                return _error("internal_error",
                              _("Something went wrong on our side. It has been logged."))

        socketio.on_event(name, handler)
        return fn

    return register


@socket_event("notifications.read")
def _notifications_read(user, data):
    """Mark notifications read from a live client: {"ids": [...]} or {"all": true}."""
    from app.core import notifications

    changed = notifications.mark_read(user, data)
    return {"changed": changed, "unread": notifications.unread_count(user.id)}


def end_user_sockets(user_id: int) -> None:
    """After commit: every socket of this person is told the session is over and stops
    receiving (the room is closed in every process through the message queue)."""
    room = user_room(user_id)

    def end():
        socketio.emit("session_ended", {}, to=room)
        _disconnect_local(room)
        socketio.close_room(room)

    on_commit(end)


def end_token_sockets(token_id: int) -> None:
    """After commit: sockets opened with this token are told, and closed."""
    room = token_room(token_id)

    def end():
        socketio.emit("session_ended", {}, to=room)
        _disconnect_local(room)

    on_commit(end)


def _disconnect_local(room: str) -> None:
    server = socketio.server
    if server is None:
        return
    for sid, _eio_sid in list(server.manager.get_participants("/", room)):
        server.disconnect(sid, namespace="/")


def end_login_sockets(login_id: str) -> None:
    """At sign-out: tell that browser's sockets to close, and close the local ones."""
    room = login_room(login_id)
    socketio.emit("session_ended", {}, to=room)
    _disconnect_local(room)
