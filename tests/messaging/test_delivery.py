"""Delivery guarantees of the mail against a real server and real Socket.IO clients.

A message is committed before anyone hears of it; each person's feed is numbered in commit
order, so a client that reconnects and asks for the events after its last number gets every
one it missed, in order, once; a resend of the same local id creates nothing new.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict

import pytest
import socketio
from sqlalchemy import func, select

from app.core import services as core
from app.core.models import FeedEvent, User
from app.core.passwords import hash_password
from app.extensions import db
from app.messaging import services as mail
from app.messaging.models import Mailbox, Message
from app.messaging.schemas import BODY_MAX
from tests.conftest import PASSWORD, REDIS_URL, ROOT, flask_cli, fresh_database_url
from tests.core.test_realtime import _free_port, _serve, cookie_header, sign_in

pytestmark = pytest.mark.live


def seed_people(*names: str) -> list[tuple[int, str]]:
    """Commit people with tokens for their sockets: [(user id, token)], one password hash."""
    hashed = hash_password(PASSWORD)
    users = [User(email=f"{name.lower().replace(' ', '-')}@example.test", name=name,
                  password_hash=hashed) for name in names]
    db.session.add_all(users)
    db.session.flush()
    out = [(u.id, core.create_token(u, {"name": "socket"})[1]) for u in users]
    db.session.commit()
    db.session.close()  # no snapshot held while the server writes (SQLite)
    return out


class Live:
    """A live client as the page runs it: it keeps the number of the last event it applied,
    applies events strictly in order, asks for what it missed after a reconnect or a gap, and
    drops what it has already seen."""

    def __init__(self, url: str, *, token: str | None = None, cookie: str | None = None):
        self.url, self.token, self.cookie = url, token, cookie
        self.last = 0
        self.applied: list[dict] = []
        self.live: queue.Queue = queue.Queue()
        self.duplicates = 0
        self.sio: socketio.Client | None = None

    def connect(self, *, sync: bool = True) -> Live:
        sio = socketio.Client(reconnection=False)
        sio.on("feed", self.live.put)
        sio.connect(self.url, auth={"token": self.token} if self.token else None,
                    headers={"Cookie": self.cookie} if self.cookie else {},
                    transports=["websocket"], wait_timeout=10)
        self.sio = sio
        if sync:
            self.sync()
        return self

    def disconnect(self) -> None:
        sio, self.sio = self.sio, None
        if sio is None:
            return
        ws = sio.eio.ws
        if ws is not None:  # the server does not answer the close frame; do not wait 3 s for it
            ws.close = functools.partial(ws.close, timeout=0.1)
        sio.disconnect()

    def call(self, name: str, data: dict, timeout: float = 10):
        return self.sio.call(name, data, timeout=timeout)

    def sync(self) -> None:
        while True:
            answer = self.call("feed.sync", {"after": self.last})
            assert "error" not in answer and not answer["reset"], answer
            for event in answer["events"]:
                self._apply(event)
            if not answer["more"]:
                return

    def _apply(self, event: dict) -> None:
        if event["seq"] <= self.last:
            self.duplicates += 1
            return
        assert event["seq"] == self.last + 1, f"event {event['seq']} after {self.last}"
        self.applied.append(event)
        self.last = event["seq"]

    def pump(self, seconds: float) -> None:
        """Apply live events for a while; a gap means one is still on its way, or was missed
        while away: ask the server (it was committed before it was emitted)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                event = self.live.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if event["seq"] > self.last + 1:
                self.sync()
                assert event["seq"] <= self.last, f"event {event['seq']} emitted before commit"
            self._apply(event)

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < end, f"not delivered in {timeout}s: {self.applied}"
            self.pump(0.05)

    def messages(self, role: str = "recipient") -> list[int]:
        return [e["payload"]["id"] for e in self.applied
                if e["kind"] == "message.new" and e["payload"]["role"] == role]


def rows_of(model, **where) -> int:
    stmt = select(func.count()).select_from(model)
    for name, value in where.items():
        stmt = stmt.where(getattr(model, name) == value)
    count = db.session.scalar(stmt)
    db.session.close()
    return count


def inbox_of(user_id: int) -> set[int]:
    ids = set(db.session.scalars(select(Mailbox.message_id).where(
        Mailbox.user_id == user_id, Mailbox.role == "recipient")))
    db.session.close()
    return ids


# --- who may send, and as whom ------------------------------------------------------------

def test_a_socket_without_a_session_is_refused(live_server):
    for auth in ({}, {"token": "crm_not-a-real-token"}, {"token": 42}):
        sio = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            sio.connect(live_server.url, auth=auth or None, transports=["websocket"],
                        wait_timeout=5)
    assert rows_of(Message) == 0


def test_the_payload_cannot_choose_the_sender(live_server):
    (me, _), (other, _), (reader, reader_token) = seed_people("Me Sender", "Other Sender",
                                                              "Reader Person")
    session = sign_in(live_server.url, "me-sender@example.test")
    sender = Live(live_server.url, cookie=cookie_header(session)).connect()
    receiver = Live(live_server.url, token=reader_token).connect()
    try:
        answer = sender.call("mail.send", {
            "to": [f"user:{reader}"], "subject": "Who am I", "local_id": "spoof-1",
            "sender_id": other, "sender": {"id": other}, "from": f"user:{other}",
            "user_id": other})
        assert "error" not in answer and answer["message"]["sender"]["id"] == me
        receiver.wait_for(lambda: receiver.messages())
        assert receiver.applied[-1]["payload"]["sender"]["id"] == me
    finally:
        sender.disconnect()
        receiver.disconnect()
    msg = db.session.scalar(select(Message).where(Message.local_id == "spoof-1"))
    assert msg.sender_id == me
    db.session.close()
    assert rows_of(Message, sender_id=other) == 0 and rows_of(FeedEvent, user_id=other) == 0


def test_bad_messages_are_refused_and_change_nothing(live_server):
    (me, token), (reader, reader_token), (gone, _) = seed_people("Writer", "Reader", "Gone")
    writer = db.session.get(User, me)
    archived = mail.create_list(writer, {"name": "Old list", "members": [f"user:{reader}"]})
    mail.archive_list(writer, archived.id)
    db.session.get(User, gone).active = False
    db.session.commit()
    archived_id = archived.id
    db.session.close()
    sender = Live(live_server.url, token=token).connect()
    try:
        to = [f"user:{reader}"]
        cases = {
            "empty message": ({"to": to, "subject": "  ", "body": ""}, "body"),
            "no recipient": ({"to": [], "subject": "Hi"}, "to"),
            "unknown person": ({"to": ["user:999999"], "subject": "Hi"}, "to"),
            "deactivated person": ({"to": [f"user:{gone}"], "subject": "Hi"}, "to"),
            "unknown post": ({"to": ["post:999999"], "subject": "Hi"}, "to"),
            "unknown token": ({"to": ["somebody"], "subject": "Hi"}, "to"),
            "archived list": ({"to": [f"list:{archived_id}"], "subject": "Hi"}, "to"),
            "body over the limit": ({"to": to, "subject": "Hi", "body": "x" * (BODY_MAX + 1)},
                                    "body"),
            "subject not text": ({"to": to, "subject": 5}, "subject"),
            "recipients not a list": ({"to": f"user:{reader}", "subject": "Hi"}, "to"),
        }
        for name, (payload, field) in cases.items():
            answer = sender.call("mail.send", {**payload, "local_id": "bad-1"})
            assert answer["error"]["code"] == "validation_error", (name, answer)
            assert answer["error"]["message"] and field in answer["error"]["fields"], (name, answer)
        assert rows_of(Message) == 0 and rows_of(Mailbox) == 0
        assert rows_of(FeedEvent, user_id=reader) == 0 and rows_of(FeedEvent, user_id=me) == 0
        # The local id of a refused message is still free.
        answer = sender.call("mail.send", {"to": to, "subject": "Now right", "local_id": "bad-1"})
        assert answer["message"]["subject"] == "Now right"
    finally:
        sender.disconnect()
    assert rows_of(Message) == 1 and inbox_of(reader) == {answer["message"]["id"]}


# --- nothing twice, nothing lost ----------------------------------------------------------

def test_a_resend_after_a_lost_acknowledgement_delivers_once(live_server):
    (_me, token), (reader, reader_token) = seed_people("Resender", "Once Reader")
    sender = Live(live_server.url, token=token).connect()
    receiver = Live(live_server.url, token=reader_token).connect()
    try:
        data = {"to": [f"user:{reader}"], "subject": "Only once", "local_id": "retry-1"}
        sender.sio.emit("mail.send", data)  # the answer to this one never arrives
        sender.sio.emit("mail.send", data)  # the client retries at once, concurrently
        first = sender.call("mail.send", data)
        again = sender.call("mail.send", {**data, "subject": "Changed on retry"})
        assert first["message"]["id"] == again["message"]["id"]
        assert again["message"]["subject"] == "Only once" and again["local_id"] == "retry-1"
        marker = sender.call("mail.send", {"to": [f"user:{reader}"], "subject": "Marker",
                                           "local_id": "retry-2"})
        receiver.wait_for(lambda: marker["message"]["id"] in receiver.messages())
        receiver.pump(0.3)
        receiver.sync()
        assert receiver.messages() == [first["message"]["id"], marker["message"]["id"]]
    finally:
        sender.disconnect()
        receiver.disconnect()
    assert rows_of(Message, local_id="retry-1") == 1
    assert inbox_of(reader) == {first["message"]["id"], marker["message"]["id"]}
    assert rows_of(FeedEvent, user_id=reader, kind="message.new") == 2


def test_a_reconnecting_client_gets_what_it_missed_in_order_once(live_server):
    (_me, token), (reader, reader_token) = seed_people("Steady Sender", "Flaky Reader")
    sender = Live(live_server.url, token=token).connect()
    receiver = Live(live_server.url, token=reader_token).connect()
    try:
        to = [f"user:{reader}"]
        first = sender.call("mail.send", {"to": to, "subject": "Before", "local_id": "r-0"})
        receiver.wait_for(lambda: receiver.messages())
        assert receiver.last == 1
        receiver.disconnect()
        missed = [sender.call("mail.send", {"to": to, "subject": f"Missed {n}",
                                            "local_id": f"r-{n}"})["message"]["id"]
                  for n in range(1, 4)]
        receiver.sio = socketio.Client(reconnection=False)
        receiver.sio.on("feed", receiver.live.put)
        receiver.sio.connect(live_server.url, auth={"token": reader_token},
                             transports=["websocket"], wait_timeout=10)
        answer = receiver.call("feed.sync", {"after": 1})
        assert [(e["seq"], e["kind"], e["payload"]["id"]) for e in answer["events"]] == [
            (2, "message.new", missed[0]), (3, "message.new", missed[1]),
            (4, "message.new", missed[2])]
        assert [e["payload"]["subject"] for e in answer["events"]] == [
            "Missed 1", "Missed 2", "Missed 3"]
        assert answer["more"] is False and answer["reset"] is False and answer["last"] == 4
        assert [e["payload"]["counts"]["mail_unread"] for e in answer["events"]] == [2, 3, 4]
        assert receiver.call("feed.sync", {"after": 4})["events"] == []
        for event in answer["events"]:
            receiver._apply(event)
        receiver.pump(0.3)  # nothing arrives live for what was missed
        assert receiver.live.empty() and receiver.duplicates == 0
        assert receiver.messages() == [first["message"]["id"], *missed]
    finally:
        sender.disconnect()
        receiver.disconnect()


def test_two_tabs_of_one_person_both_get_each_event(live_server):
    (_me, token), (reader, reader_token) = seed_people("Tab Sender", "Two Tabs")
    sender = Live(live_server.url, token=token).connect()
    tabs = [Live(live_server.url, token=reader_token).connect() for _ in range(2)]
    try:
        sent = sender.call("mail.send", {"to": [f"user:{reader}"], "subject": "Both tabs",
                                         "local_id": "tabs-1"})["message"]["id"]
        for tab in tabs:
            tab.wait_for(lambda tab=tab: tab.messages())
            assert tab.messages() == [sent]
        tabs[0].call("mail.read", {"ids": [sent]})
        for tab in tabs:
            tab.wait_for(lambda tab=tab: tab.last == 2)
            assert tab.applied[-1]["kind"] == "message.read"
            assert tab.applied[-1]["payload"]["counts"]["mail_unread"] == 0
        sender.wait_for(lambda: any(e["kind"] == "message.receipt" for e in sender.applied))
    finally:
        sender.disconnect()
        for tab in tabs:
            tab.disconnect()


# --- several server processes -------------------------------------------------------------

SEED = """
import functools
import json
from app import create_app
from app.core import services
from app.core.models import User
from app.core.passwords import hash_password
from app.extensions import db
app = create_app()
with app.app_context():
    out = []
    for name in ("Anna East", "Boris West"):
        user = User(email=name.lower().replace(" ", ".") + "@example.test", name=name,
                    password_hash=hash_password("x" * 16))
        db.session.add(user)
        db.session.flush()
        out.append([user.id, services.create_token(user, {"name": "socket"})[1]])
    db.session.commit()
    print(json.dumps(out))
"""


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL for the Socket.IO message queue")
def test_two_processes_deliver_mail_to_each_others_clients(tmp_path):
    """Anna is connected to server A, Boris to server B; each writes through their own server
    and the other hears it live (Redis carries the emit between the processes)."""
    with fresh_database_url(tmp_path) as url:
        env = {**os.environ, "FLASK_APP": "app:create_app", "INSTANCE_DIR": str(tmp_path),
               "SECRET_KEY": "shared-secret", "DATABASE_URL": url, "REDIS_URL": REDIS_URL,
               "REDIS_KEY_PREFIX": f"crm-test-{uuid.uuid4().hex[:8]}"}  # a queue of its own
        flask_cli(env, "db", "upgrade")
        seeded = subprocess.run([sys.executable, "-c", SEED], env=env, cwd=ROOT, check=True,
                                capture_output=True, text=True, timeout=60)
        (anna, anna_token), (boris, boris_token) = json.loads(seeded.stdout.strip().splitlines()[-1])
        port_a, port_b = _free_port(), _free_port()
        log = open(tmp_path / "servers.log", "wb")  # noqa: SIM115 - closed below
        servers = [_serve(env, port_a, log), _serve(env, port_b, log)]
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        clients = []
        try:
            on_a = Live(a, token=anna_token).connect()
            on_b = Live(b, token=boris_token).connect()
            clients = [on_a, on_b]
            for n in range(3):
                to_b = on_a.call("mail.send", {"to": [f"user:{boris}"], "subject": f"A to B {n}",
                                               "local_id": f"ab-{n}"})["message"]["id"]
                on_b.wait_for(lambda to_b=to_b: to_b in on_b.messages())
                to_a = on_b.call("mail.send", {"to": [f"user:{anna}"], "subject": f"B to A {n}",
                                               "parent_id": to_b, "local_id": f"ba-{n}"})
                on_a.wait_for(lambda to_a=to_a: to_a["message"]["id"] in on_a.messages())
                assert to_a["message"]["thread_id"] == to_b
            on_a.pump(0.3)
            on_b.pump(0.3)
            for live, subjects in ((on_a, "B to A"), (on_b, "A to B")):
                got = [e["payload"]["subject"] for e in live.applied
                       if e["kind"] == "message.new" and e["payload"]["role"] == "recipient"]
                assert got == [f"{subjects} {n}" for n in range(3)]
                live.sync()  # the other process numbered the same feed: nothing missing
                # Emits of two processes may overtake each other on the way: the client then
                # syncs and drops the late copy, so each event is applied once, in order.
                assert len(live.messages()) == 3
                assert [e["seq"] for e in live.applied] == list(range(1, live.last + 1))
        finally:
            for live in clients:
                live.disconnect()
            for proc in servers:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            log.close()


SEED_PEOPLE = """
import json
import sys
from app import create_app
from app.core import services
from app.core.models import User
from app.core.passwords import hash_password
from app.extensions import db
app = create_app()
with app.app_context():
    hashed, out = hash_password("x" * 16), []
    for name in sys.argv[1:]:
        user = User(email=name.lower() + "@example.test", name=name, password_hash=hashed)
        db.session.add(user)
        db.session.flush()
        out.append([user.id, services.create_token(user, {"name": "socket"})[1]])
    db.session.commit()
    print(json.dumps(out))
"""


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL for the Socket.IO message queue")
def test_one_message_to_people_on_two_processes_is_one_publish_and_reaches_only_them(tmp_path):
    """Anna (on A) writes to Dan (on A) and to Boris and Clara (on B); Eve (on B) is not
    addressed. The commit is one message on the queue; each person hears only their own
    event, once, whichever process holds their socket."""
    import redis

    prefix = f"crm-test-{uuid.uuid4().hex[:8]}"  # a queue of this test's own
    with fresh_database_url(tmp_path) as url:
        env = {**os.environ, "FLASK_APP": "app:create_app", "INSTANCE_DIR": str(tmp_path),
               "SECRET_KEY": "shared-secret", "DATABASE_URL": url, "REDIS_URL": REDIS_URL,
               "REDIS_KEY_PREFIX": prefix}
        flask_cli(env, "db", "upgrade")
        names = ("Anna", "Boris", "Clara", "Dan", "Eve")
        seeded = subprocess.run([sys.executable, "-c", SEED_PEOPLE, *names], env=env, cwd=ROOT,
                                check=True, capture_output=True, text=True, timeout=60)
        people = dict(zip(names, json.loads(seeded.stdout.strip().splitlines()[-1]), strict=True))
        port_a, port_b = _free_port(), _free_port()
        log = open(tmp_path / "servers.log", "wb")  # noqa: SIM115 - closed below
        servers = [_serve(env, port_a, log), _serve(env, port_b, log)]
        on = {"Anna": port_a, "Dan": port_a, "Boris": port_b, "Clara": port_b, "Eve": port_b}
        clients: dict[str, Live] = {}
        queue_client = redis.Redis.from_url(REDIS_URL)
        sub = queue_client.pubsub(ignore_subscribe_messages=True)
        try:
            for name, port in on.items():
                clients[name] = Live(f"http://127.0.0.1:{port}", token=people[name][1]).connect()
            sub.subscribe(f"{prefix}:socketio")
            end = time.monotonic() + 5
            while queue_client.pubsub_numsub(f"{prefix}:socketio")[0][1] < 3:  # A, B and this
                assert time.monotonic() < end, "the servers never listened to the queue"
                time.sleep(0.05)
            to = [f"user:{people[n][0]}" for n in ("Boris", "Clara", "Dan")]
            sent = clients["Anna"].call("mail.send", {"to": to, "subject": "To three",
                                                      "local_id": "three-1"})["message"]
            for name in ("Boris", "Clara", "Dan"):
                live = clients[name]
                live.wait_for(lambda live=live: live.messages())
            for live in clients.values():
                live.pump(0.3)
            queued, end = [], time.monotonic() + 0.5
            while time.monotonic() < end:
                message = sub.get_message(timeout=0.1)
                if message is not None and message["type"] == "message":
                    queued.append(json.loads(message["data"]))
        finally:
            sub.close()
            queue_client.close()
            for live in clients.values():
                live.disconnect()
            for proc in servers:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            log.close()
    assert [m["method"] for m in queued] == ["crm_emit_batch"], queued
    assert sorted(room for room, _event, _data in queued[0]["items"]) == sorted(
        f"user:{people[n][0]}" for n in ("Anna", "Boris", "Clara", "Dan"))
    for name in ("Boris", "Clara", "Dan"):
        live = clients[name]
        assert [(e["seq"], e["kind"], e["payload"]["id"], e["payload"]["role"]) for e in live.applied] \
            == [(1, "message.new", sent["id"], "recipient")], name
        assert live.applied[0]["payload"]["counts"]["mail_unread"] == 1 and live.duplicates == 0
    assert clients["Anna"].messages("sender") == [sent["id"]] and clients["Anna"].messages() == []
    assert clients["Eve"].applied == [] and clients["Eve"].live.empty()


# --- many senders, receivers that come and go ---------------------------------------------
# The clients run in other processes (spawned), so the server in this one has the
# interpreter to itself, as it would in production.

def _chaos_size() -> tuple[int, int, int, float]:
    """Senders, receivers, messages, and the longest pause a sender takes between two."""
    if db.engine.dialect.name == "postgresql":
        return 20, 50, 2000, 0.0
    # SQLite writes one transaction at a time and its waiters are served in no fair order:
    # the same test, smaller and at a human pace.
    return 3, 8, 120, 0.4


def _report_errors(results, role: str, fn) -> None:
    try:
        results.put((role, fn()))
    except BaseException:  # the parent fails the test with this text
        import traceback

        results.put(("error", f"{role}: {traceback.format_exc()}"))


def _send_in_child(url: str, senders: list, receiver_ids: list[int], pause: float,
                   results) -> None:
    """Each sender writes its messages one after another (1-3 receivers each, about a third
    replies in its own earlier threads); now and then an answer is lost and it sends again."""

    def run() -> dict:
        sent: list[dict] = []
        stats = Counter()
        lock = threading.Lock()
        errors: list[BaseException] = []

        def send_all(n: int, token: str, count: int, seed: float) -> None:
            r = random.Random(seed)
            client = Live(url, token=token).connect(sync=False)
            mine: list[int] = []
            try:
                for k in range(count):
                    if errors:
                        return
                    time.sleep(r.uniform(0, pause))
                    to = r.sample(receiver_ids, r.randint(1, 3))
                    data = {"to": [f"user:{uid}" for uid in to], "subject": f"S{n} #{k}",
                            "body": f"Message {k} from sender {n}", "local_id": f"s{n}-{k}"}
                    if mine and r.random() < 0.35:
                        data["parent_id"] = r.choice(mine)
                    if r.random() < 0.05:  # the answer to this first attempt is lost
                        client.sio.emit("mail.send", data)
                        stats["lost_acks"] += 1
                    for _attempt in range(10):
                        try:
                            answer = client.call("mail.send", data, timeout=15)
                            break
                        except socketio.exceptions.TimeoutError:
                            stats["retries"] += 1
                    else:
                        raise AssertionError(f"sender {n}: no answer to {data['local_id']}")
                    assert "error" not in answer, answer
                    msg = answer["message"]
                    mine.append(msg["id"])
                    with lock:
                        sent.append({"id": msg["id"], "to": to, "thread": msg["thread_id"]})
            except BaseException as exc:
                errors.append(exc)
                raise
            finally:
                client.disconnect()

        threads = [threading.Thread(target=send_all, args=args, daemon=True) for args in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        if errors:
            raise errors[0]
        return {"sent": sent, "stats": dict(stats)}

    _report_errors(results, "senders", run)


def _receive_in_child(url: str, receivers: list, stop, results) -> None:
    """Each receiver is online for a while, then away (closing politely or just dropping the
    connection), and on every reconnect asks for what it missed; at the end it is online."""

    def run() -> dict:
        out: dict[int, dict] = {}
        stats = Counter()
        errors: list[BaseException] = []

        def receive(uid: int, token: str, seed: float) -> None:
            r = random.Random(seed)
            live = Live(url, token=token)
            try:
                cycles = 0
                while (not stop.is_set() or cycles < 3) and not errors:
                    cycles += 1
                    live.connect()
                    stats["connects"] += 1
                    live.pump(r.uniform(2.0, 8.0))
                    if r.random() < 0.25:  # the connection just drops, without a goodbye
                        live.sio.eio.ws.sock.shutdown(socket.SHUT_RDWR)
                        stats["dropped"] += 1
                    live.disconnect()
                    time.sleep(r.uniform(0.2, 2.0))
                live.connect()  # the last reconnect: whatever is still missing arrives now
                live.pump(0.2)
                live.disconnect()
                out[uid] = {"events": [(e["seq"], e["kind"], e["payload"].get("id"),
                                        e["payload"].get("role")) for e in live.applied],
                            "duplicates": live.duplicates}
            except BaseException as exc:
                errors.append(exc)
                raise

        threads = [threading.Thread(target=receive, args=args, daemon=True) for args in receivers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        if errors:
            raise errors[0]
        return {"received": out, "stats": dict(stats)}

    _report_errors(results, "receivers", run)


def _collect(results, processes, count: int, timeout: float) -> list[tuple[str, dict]]:
    got, end = [], time.monotonic() + timeout
    while len(got) < count:
        try:
            role, value = results.get(timeout=1)
        except queue.Empty:
            assert time.monotonic() < end, f"clients did not finish within {timeout}s"
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            assert not dead, f"a client process died: {dead}"
            continue
        assert role != "error", value
        got.append((role, value))
    return got


def test_concurrent_senders_and_flaky_receivers_lose_nothing_and_repeat_nothing(live_server):
    import multiprocessing

    senders_n, receivers_n, total, pause = _chaos_size()
    rng = random.Random(5)
    people = seed_people(*[f"Sender {n}" for n in range(senders_n)],
                         *[f"Receiver {n}" for n in range(receivers_n)])
    senders, receivers = people[:senders_n], people[senders_n:]
    receiver_ids = [uid for uid, _token in receivers]
    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    halves = [receivers[: receivers_n // 2], receivers[receivers_n // 2:]]
    receiving = [ctx.Process(target=_receive_in_child, daemon=True, args=(
        live_server.url, [(uid, token, rng.random()) for uid, token in half], stop, results))
        for half in halves]
    plan = [(n, token, total // senders_n + (n < total % senders_n), rng.random())
            for n, (_uid, token) in enumerate(senders)]
    sending = ctx.Process(target=_send_in_child, daemon=True,
                          args=(live_server.url, plan, receiver_ids, pause, results))
    processes = [*receiving, sending]
    try:
        for p in processes:
            p.start()
        (role, outcome), = _collect(results, processes, 1, timeout=600)
        assert role == "senders"
        stop.set()
        received: dict[int, dict] = {}
        stats = Counter(outcome["stats"])
        for _role, part in _collect(results, processes, len(receiving), timeout=120):
            received.update(part["received"])
            stats.update(part["stats"])
    finally:
        stop.set()
        for p in processes:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join(5)
        results.close()
        results.join_thread()

    sent = {m["id"]: m for m in outcome["sent"]}
    assert len(sent) == total == rows_of(Message)  # retries and lost answers made nothing more
    thread_order: dict[int, list[int]] = defaultdict(list)
    for mid in sorted(sent):  # one sender writes a thread, one message after another
        thread_order[sent[mid]["thread"]].append(mid)
    threads = db.session.execute(select(Message.thread_id, Message.id).order_by(Message.id)).all()
    in_db: dict[int, list[int]] = defaultdict(list)
    for thread, mid in threads:
        in_db[thread].append(mid)
    assert in_db == thread_order
    assert sum(len(ids) > 1 for ids in thread_order.values()) > total // 10  # replies happened

    for uid in receiver_ids:
        events = received[uid]["events"]
        assert [seq for seq, *_rest in events] == list(range(1, len(events) + 1))
        got = [mid for _seq, kind, mid, role in events if kind == "message.new" and role == "recipient"]
        assert len(got) == len(set(got)), f"receiver {uid} got a message twice"
        expected = {mid for mid, m in sent.items() if uid in m["to"]}
        assert set(got) == expected == inbox_of(uid), f"receiver {uid}"
        position = {mid: i for i, mid in enumerate(got)}
        for thread, ids in thread_order.items():
            seen = [mid for mid in ids if mid in position]
            assert sorted(seen, key=position.get) == seen, f"receiver {uid}, thread {thread}"
        assert rows_of(FeedEvent, user_id=uid, kind="message.new") == len(expected)
    assert stats["connects"] >= receivers_n * 3 and stats["dropped"] > 0 and stats["lost_acks"] > 0
    print(f"\nchaos: {dict(stats)}, duplicates dropped by clients: "
          f"{sum(r['duplicates'] for r in received.values())}")
