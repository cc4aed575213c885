"""Live delivery of mail: messages delivered per second and send-to-receive latency.

N receivers (real python-socketio clients over websocket, in other processes) are connected;
one sender sends messages to all of them through the socket event `mail.send` of the CRM
served by `flask crm serve`: first M messages, each as soon as the server has answered the
last (throughput), then a few more, each once every receiver has the last (latency with
nothing queued ahead). Each message carries its send time in the subject; each receiver notes
when the feed event arrives. Then the same with a bare python-socketio server
(bench.bare_socketio) that only emits the same payload to the same clients, in the same run.
The ratios are the figures to compare across machines.

    python -m bench.mail_delivery                    # SQLite file, no Redis
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    REDIS_URL=redis://127.0.0.1:6379/0 python -m bench.mail_delivery

BENCH_RECEIVERS (200), BENCH_MESSAGES (50), BENCH_PROBES (20) and BENCH_PROCESSES (2,
receiving processes) change the load. On PostgreSQL the run uses a schema of its own and
drops it afterwards; the servers' logs are kept in the run's temporary folder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests
import socketio

from app.core import pgschema

ROOT = Path(__file__).resolve().parent.parent
RECEIVERS = int(os.environ.get("BENCH_RECEIVERS", "200"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "50"))
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "2"))
PROBES = int(os.environ.get("BENCH_PROBES", "20"))
WARMUP = 5
LIST_MAX = 200  # members of one mailing list


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(args: list[str], env: dict, port: int) -> subprocess.Popen:
    log = Path(env["INSTANCE_DIR"]) / f"server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{' '.join(args)} did not start; see {log}")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


@contextmanager
def database(tmp: Path):
    """The bench's own database: a new PostgreSQL schema, or a SQLite file."""
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        yield url or f"sqlite:///{tmp / 'bench.sqlite'}"
        return
    import sqlalchemy as sa

    schema = f"crm_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        pgschema.prepare(conn)
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{pgschema.search_path(schema)}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# --- receiving (in other processes) --------------------------------------------------------

def receive(url: str, tokens: list[str | None], expected: int, deadline: float, ready, progress,
            results):
    """Connect one client per token, note the arrival of every message, tell the sender when
    all clients here have a message, report when each has all `expected` or at the deadline."""
    arrivals: list[tuple[int, float, float]] = []  # (message number, sent at, received at)
    lock = threading.Lock()
    counts = [0] * len(tokens)
    by_message: dict[int, int] = {}
    sample: list[dict] = []
    clients = []

    def handler(n: int):
        def on_feed(event):
            now = time.time()
            payload = event.get("payload") or {}
            subject = payload.get("subject") or ""
            if event.get("kind") != "message.new" or not subject.startswith("bench "):
                return
            _word, number, sent_at = subject.split(" ")
            with lock:
                arrivals.append((int(number), float(sent_at), now))
                counts[n] += 1
                by_message[int(number)] = by_message.get(int(number), 0) + 1
                if by_message[int(number)] == len(tokens):
                    progress.put(int(number))
                if not sample:
                    sample.append(event)
        return on_feed

    for n, token in enumerate(tokens):
        sio = socketio.Client(reconnection=False)
        sio.on("feed", handler(n))
        sio.connect(url, auth={"token": token} if token else None, transports=["websocket"],
                    wait_timeout=30)
        clients.append(sio)
    ready.put(len(clients))
    while time.time() < deadline:
        with lock:
            if min(counts) >= expected:
                break
        time.sleep(0.05)
    for sio in clients:
        ws = sio.eio.ws
        if ws is not None:  # the server does not answer the close frame; do not wait for it
            ws.close = lambda *a, _close=ws.close, **k: _close(timeout=0.1)
        sio.disconnect()
    results.put({"arrivals": arrivals, "missing": sum(max(0, expected - c) for c in counts),
                 "sample": sample[0] if sample else None})


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def run(name: str, url: str, receiver_tokens: list[str | None], send) -> dict:
    """Connect the receivers in PROCESSES processes. Throughput: WARMUP + MESSAGES messages
    one after another, each sent once the server has answered the last. Latency: PROBES more,
    each sent once every receiver has the last, so no message waits behind another."""
    ctx = multiprocessing.get_context("spawn")
    ready, progress, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    deadline = time.time() + 120 + (MESSAGES + PROBES) * 3
    expected = WARMUP + MESSAGES + PROBES
    parts = [part for part in (receiver_tokens[i::PROCESSES] for i in range(PROCESSES)) if part]
    procs = [ctx.Process(target=receive, daemon=True,
                         args=(url, part, expected, deadline, ready, progress, results))
             for part in parts]
    for p in procs:
        p.start()
    connected = sum(ready.get(timeout=300) for _ in procs)
    assert connected == len(receiver_tokens), (connected, len(receiver_tokens))
    done: dict[int, int] = {}

    def wait_all(number: int) -> None:
        while done.get(number, 0) < len(procs):
            got = progress.get(timeout=max(1.0, deadline - time.time()))
            done[got] = done.get(got, 0) + 1

    for number in range(-WARMUP, MESSAGES):
        now = time.time()
        if number == 0:
            first = now
        send(number, f"bench {number} {now:.6f}")
    wait_all(MESSAGES - 1)
    for number in range(MESSAGES, MESSAGES + PROBES):
        send(number, f"bench {number} {time.time():.6f}")
        wait_all(number)
    gathered = [results.get(timeout=max(10.0, deadline - time.time() + 30)) for _ in procs]
    for p in procs:
        p.join(30)
    arrivals = [a for part in gathered for a in part["arrivals"]]
    flood = [a for a in arrivals if 0 <= a[0] < MESSAGES]
    probes = [(got - sent) * 1000 for n, sent, got in arrivals if n >= MESSAGES]
    return {
        "name": name,
        "missing": sum(part["missing"] for part in gathered),
        "per_second": len(flood) / (max(got for _n, _s, got in flood) - first),
        "flood_p50": percentile([(got - sent) * 1000 for _n, sent, got in flood], 0.5),
        "p50": percentile(probes, 0.5),
        "p99": percentile(probes, 0.99),
        "sample": next((part["sample"] for part in gathered if part["sample"]), None),
    }


# --- the two servers ---------------------------------------------------------------------

SETUP = """
import json, sys
from app import create_app
from app.core import services
from app.core.models import User
from app.core.passwords import hash_password
from app.extensions import db
from app.messaging import services as mail
app = create_app()
n, size = int(sys.argv[1]), int(sys.argv[2])
with app.app_context():
    hashed = hash_password("bench-password-1")
    users = [User(email=f"bench-{i}@example.test", name=f"Receiver {i}", password_hash=hashed)
             for i in range(n + 1)]
    db.session.add_all(users)
    db.session.flush()
    sender, receivers = users[0], users[1:]
    sender.name = "Bench sender"
    tokens = [services.create_token(u, {"name": "bench"})[1] for u in users]
    lists = [mail.create_list(sender, {"name": f"Everyone {i}", "members": [
                 f"user:{u.id}" for u in receivers[i:i + size]]}).id for i in range(0, n, size)]
    db.session.commit()
    print(json.dumps({"sender": tokens[0], "receivers": tokens[1:], "lists": lists}))
"""


def crm_run(env: dict) -> dict:
    subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", SETUP, str(RECEIVERS), str(LIST_MAX)], cwd=ROOT,
                         env=env, check=True, capture_output=True, text=True).stdout
    seeded = json.loads(out.strip().splitlines()[-1])
    port = free_port()
    server = serve(["-m", "flask", "crm", "serve", "--port", str(port), "--no-jobs"], env, port)
    url = f"http://127.0.0.1:{port}"
    try:
        requests.get(f"{url}/health", timeout=10).raise_for_status()
        sender = socketio.Client(reconnection=False)
        sender.connect(url, auth={"token": seeded["sender"]}, transports=["websocket"],
                       wait_timeout=30)
        to = [f"list:{i}" for i in seeded["lists"]]

        def send(number: int, subject: str) -> None:
            answer = sender.call("mail.send", {"to": to, "subject": subject, "body": "Bench.",
                                               "local_id": f"bench-{number}"}, timeout=60)
            if "error" in answer:
                raise SystemExit(f"mail.send failed: {answer}")

        try:
            return run("CRM mail.send", url, seeded["receivers"], send)
        finally:
            sender.disconnect()
    finally:
        stop(server)


def bare_run(env: dict, sample: dict) -> dict:
    port = free_port()
    server = serve(["-m", "bench.bare_socketio", str(port)], env, port)
    url = f"http://127.0.0.1:{port}"
    try:
        sender = socketio.Client(reconnection=False)
        sender.connect(url, transports=["websocket"], wait_timeout=30)

        def send(number: int, subject: str) -> None:
            event = {**sample, "seq": number + WARMUP + 1,
                     "payload": {**sample["payload"], "subject": subject}}
            sender.call("bench.send", event, timeout=60)

        try:
            return run("bare python-socketio", url, [None] * RECEIVERS, send)
        finally:
            sender.disconnect()
    finally:
        stop(server)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    with database(tmp) as url:
        env = {**os.environ, "FLASK_APP": "app:create_app", "INSTANCE_DIR": str(tmp),
               "SECRET_KEY": "bench", "CRM_ENV": "production", "DATABASE_URL": url}
        crm = crm_run(env)
        bare = bare_run(env, crm["sample"])
    redis = "Redis message queue" if os.environ.get("REDIS_URL") else "no Redis (one process)"
    print(f"database: {url.split(':', 1)[0]}; {redis}; {RECEIVERS} receivers in {PROCESSES} "
          f"processes; throughput: {MESSAGES} messages to all receivers, each sent when the "
          f"server answered the last; latency: {PROBES} messages, each sent when all receivers "
          "had the last")
    for r in (bare, crm):
        print(f"{r['name']:20}: {r['per_second']:7.0f} deliveries/s "
              f"({r['per_second'] / RECEIVERS:5.1f} messages/s; p50 {r['flood_p50']:6.0f} ms under "
              f"that load); one at a time: p50 {r['p50']:5.1f} ms, p99 {r['p99']:5.1f} ms; "
              f"missing {r['missing']}")
    print(f"ratio CRM ÷ bare: throughput {crm['per_second'] / bare['per_second']:.2f} "
          f"(target ≥ 0.50); p99 {crm['p99'] / bare['p99']:.1f}× the bare p99 "
          f"(target: under 100 ms, {'met' if crm['p99'] < 100 else 'not met'})")

if __name__ == "__main__":
    main()
