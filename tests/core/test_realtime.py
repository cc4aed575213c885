"""The live channel against a real server and real Socket.IO clients."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import socketio

from app.core import notifications, services
from app.extensions import db
from tests.conftest import PASSWORD, REDIS_URL, ROOT, flask_cli, fresh_database_url, seed_user

pytestmark = pytest.mark.live


def sign_in(base: str, email: str) -> requests.Session:
    s = requests.Session()
    html = s.get(f"{base}/login", timeout=5).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    resp = s.post(f"{base}/login", data={"email": email, "password": PASSWORD,
                                         "csrf_token": token}, allow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text[:500]
    return s


def cookie_header(s: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


def client_for(base: str, *, cookie: str | None = None, token: str | None = None,
               origin: str | None = None):
    events: queue.Queue = queue.Queue()
    sio = socketio.Client(reconnection=False)
    sio.on("notification", lambda data: events.put(("notification", data)))
    sio.on("session_ended", lambda data: events.put(("session_ended", data)))
    sio.on("disconnect", lambda *a: events.put(("disconnect", None)))
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    sio.connect(base, headers=headers, auth={"token": token} if token else None,
                transports=["websocket"], wait_timeout=5)
    return sio, events


def next_event(events: queue.Queue, name: str, timeout: float = 5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            kind, data = events.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        if kind == name:
            return data
    raise AssertionError(f"no {name} event within {timeout}s")


def test_socket_without_a_session_is_refused(live_server):
    with pytest.raises(socketio.exceptions.ConnectionError):
        client_for(live_server.url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client_for(live_server.url, token="crm_not-a-real-token")


def test_notification_arrives_live_after_commit(live_server):
    user = seed_user("Live Person", "live1@example.test")
    session = sign_in(live_server.url, user.email)
    sio, events = client_for(live_server.url, cookie=cookie_header(session))
    try:
        notifications.notify(user.id, "test", "Hello live")
        db.session.rollback()  # rolled back: must never arrive
        notifications.notify(user.id, "test", "Committed one")
        db.session.commit()
        data = next_event(events, "notification")
        assert data["title"] == "Committed one" and data["unread"] == 1
    finally:
        sio.disconnect()


def test_token_holders_connect_and_only_get_their_own(live_server):
    alice = seed_user("Alice", "alice-live@example.test")
    bob = seed_user("Bob", "bob-live@example.test")
    _tok, plain = services.create_token(alice, {"name": "sock"})
    db.session.commit()
    sio, events = client_for(live_server.url, token=plain)
    try:
        notifications.notify(bob.id, "test", "For Bob")
        notifications.notify(alice.id, "test", "For Alice")
        db.session.commit()
        assert next_event(events, "notification")["title"] == "For Alice"
    finally:
        sio.disconnect()


def test_sign_out_closes_that_browsers_sockets(live_server):
    user = seed_user("Leaving", "leaving@example.test")
    session = sign_in(live_server.url, user.email)
    sio, events = client_for(live_server.url, cookie=cookie_header(session))
    html = session.get(f"{live_server.url}/", timeout=5).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    session.post(f"{live_server.url}/logout", data={"csrf_token": token}, timeout=5)
    next_event(events, "disconnect")
    assert not sio.connected
    with pytest.raises(socketio.exceptions.ConnectionError):  # the old cookie no longer works
        client_for(live_server.url, cookie=cookie_header(session))


def test_foreign_origin_is_refused(live_server):
    user = seed_user("Origin", "origin@example.test")
    session = sign_in(live_server.url, user.email)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client_for(live_server.url, cookie=cookie_header(session), origin="http://evil.example")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(env: dict, port: int, log) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "crm", "serve", "--port", str(port), "--no-jobs"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    proc.wait(5)
    raise AssertionError(f"server on port {port} did not start; see {log.name}")


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL for the Socket.IO message queue")
def test_two_processes_deliver_to_each_others_clients(tmp_path):
    """A client on server A hears what happens on server B, and the other way round."""
    with fresh_database_url(tmp_path) as url:
        env = {**os.environ, "FLASK_APP": "app:create_app", "INSTANCE_DIR": str(tmp_path),
               "SECRET_KEY": "shared-secret", "DATABASE_URL": url, "REDIS_URL": REDIS_URL}
        flask_cli(env, "db", "upgrade")
        flask_cli(env, "crm", "create-admin", "--email", "two@example.test", "--name", "Two",
                  "--password", PASSWORD)
        port_a, port_b = _free_port(), _free_port()
        log = open(tmp_path / "servers.log", "wb")  # noqa: SIM115 - closed below
        servers = [_serve(env, port_a, log), _serve(env, port_b, log)]
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        try:
            for listen_on, act_on in ((a, b), (b, a)):
                session = sign_in(act_on, "two@example.test")
                sio, events = client_for(listen_on, cookie=cookie_header(session))
                try:
                    html = session.get(f"{act_on}/account/tokens", timeout=5).text
                    csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
                    name = f"made on {act_on}"
                    session.post(f"{act_on}/account/tokens", data={"name": name, "csrf_token": csrf},
                                 timeout=5)
                    data = next_event(events, "notification", timeout=10)
                    assert name in data["title"]
                finally:
                    sio.disconnect()
        finally:
            for proc in servers:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            log.close()


def test_socket_event_marks_read_and_answers_errors(live_server):
    user = seed_user("Reader", "reader@example.test")
    notifications.notify(user.id, "test", "One")
    notifications.notify(user.id, "test", "Two")
    db.session.commit()
    session = sign_in(live_server.url, user.email)
    sio, _events = client_for(live_server.url, cookie=cookie_header(session))
    try:
        bad = sio.call("notifications.read", {"ids": "not-a-list"}, timeout=5)
        assert bad["error"]["code"] == "validation_error" and "ids" in bad["error"]["fields"]
        assert notifications.unread_count(user.id) == 2
        db.session.close()  # end the read before the server writes (SQLite locks)
        ok = sio.call("notifications.read", {"all": True}, timeout=5)
        assert ok == {"changed": 2, "unread": 0}
    finally:
        sio.disconnect()
        db.session.close()


def test_deactivation_ends_the_persons_sockets(live_server):
    admin = seed_user("Boss", "boss-live@example.test", is_admin=True)
    user = seed_user("Leaver", "leaver-live@example.test")
    session = sign_in(live_server.url, user.email)
    sio, events = client_for(live_server.url, cookie=cookie_header(session))
    try:
        from app.core.models import User

        services.set_active(db.session.get(User, admin.id), db.session.get(User, user.id), False)
        db.session.commit()
        next_event(events, "session_ended")
    finally:
        sio.disconnect()


def test_token_socket_can_act_and_is_closed_when_revoked(live_server):
    from app.core.models import User

    user = seed_user("Robot", "robot@example.test")
    notifications.notify(user.id, "test", "For the robot")
    token, plain = services.create_token(db.session.get(User, user.id), {"name": "robot"})
    token_id = token.id
    db.session.commit()
    db.session.close()
    sio, events = client_for(live_server.url, token=plain)
    try:
        assert sio.call("notifications.read", {"all": True}, timeout=5)["unread"] == 0
        services.revoke_token(db.session.get(User, user.id), token_id)
        db.session.commit()
        next_event(events, "disconnect")
        assert not sio.connected
    finally:
        if sio.connected:
            sio.disconnect()
