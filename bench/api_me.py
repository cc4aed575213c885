"""Requests per second of /api/v1/me (token auth, database) against a bare Flask endpoint.

Both are served the same way (gunicorn, 2 gthread workers) and loaded the same way
(wrk if installed, else a keep-alive Python client) in the same run; the ratio is the
figure to compare across machines.

    make bench            # SQLite file
    DATABASE_URL=postgresql://postgres@127.0.0.1/test make bench
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATION = int(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(target: str, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4",
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", target],
        cwd=ROOT, env=env, start_new_session=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{target} did not start")


def load(port: int, token: str) -> float:
    """Requests per second answered with 200 over DURATION seconds."""
    if shutil.which("wrk"):
        out = subprocess.run(
            ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "-H",
             f"Authorization: Bearer {token}", f"http://127.0.0.1:{port}/api/v1/me"],
            capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out:
            raise SystemExit(f"errors during load:\n{out}")
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    count, stop = [0], time.monotonic() + DURATION

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port)
        while time.monotonic() < stop:
            conn.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            count[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0] / DURATION


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    env = {**os.environ, "FLASK_APP": "app:create_app", "INSTANCE_DIR": str(tmp),
           "SECRET_KEY": "bench", "CRM_ENV": "production"}
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite'}")
    subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    setup = subprocess.run([sys.executable, "-c", SETUP], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    token, payload = setup.split(" ", 1)
    env["BENCH_PAYLOAD"] = payload
    results = {}
    for name, target in (("bare Flask endpoint", "bench.bare_app:app"),
                         ("/api/v1/me", "app:create_app()")):
        proc, port = serve(target, env)
        try:
            load(port, token)  # warm up
            results[name] = load(port, token)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    bare, real = results["bare Flask endpoint"], results["/api/v1/me"]
    db = env["DATABASE_URL"].split(":", 1)[0]
    print(f"database: {db}; {DURATION}s per run, {CONNECTIONS} connections, "
          f"loader: {'wrk' if shutil.which('wrk') else 'python'}")
    print(f"bare Flask endpoint : {bare:8.0f} req/s")
    print(f"/api/v1/me          : {real:8.0f} req/s")
    print(f"ratio /api/v1/me ÷ bare = {real / bare:.2f}")


SETUP = """
import json
from app import create_app
from app.core import services
from app.core.models import User
from app.core.passwords import hash_password
from app.core.schemas import UserSchema
from app.extensions import db
app = create_app()
with app.app_context():
    import uuid
    user = User(email=f"bench-{uuid.uuid4().hex[:8]}@example.test", name="Bench",
                password_hash=hash_password("x" * 12))
    db.session.add(user); db.session.flush()
    _tok, plain = services.create_token(user, {"name": "bench"})
    db.session.commit()
    print(plain, json.dumps(UserSchema().dump(user)))
"""

if __name__ == "__main__":
    main()
