"""The baseline for bench.mail_delivery: a bare python-socketio server, served like the CRM
(threading mode, simple-websocket, Werkzeug), that only emits what it is given to every
connected client. No sign-in, no database; Redis as the message queue when REDIS_URL is set,
as the CRM uses it.

    python -m bench.bare_socketio PORT
"""

from __future__ import annotations

import logging
import os
import socket
import sys

import socketio
from werkzeug.serving import run_simple

ROOM = "everyone"


def create() -> socketio.Server:
    redis_url = os.environ.get("REDIS_URL")
    manager = socketio.RedisManager(redis_url, channel="bench-bare") if redis_url else None
    sio = socketio.Server(async_mode="threading", client_manager=manager)

    @sio.on("connect")
    def connect(sid, environ, auth=None):
        sock = environ.get("werkzeug.socket")
        if sock is not None:  # as the CRM does: each frame leaves at once
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sio.enter_room(sid, ROOM)

    @sio.on("bench.send")
    def send(sid, data):
        sio.emit("feed", data, to=ROOM)
        return {"ok": True}

    return sio


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # closed sockets, as in the CRM
    run_simple("127.0.0.1", int(sys.argv[1]), socketio.WSGIApp(create()), threaded=True,
               use_reloader=False)


if __name__ == "__main__":
    main()
