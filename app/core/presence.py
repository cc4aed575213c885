"""Who is online: each open socket reports itself (active or away) and is forgotten when it
closes or stops reporting. Kept in Redis when REDIS_URL is set, so every server process sees
every socket; in process memory otherwise (one process)."""

from __future__ import annotations

import threading
import time

from flask import current_app

TTL = 90  # seconds a socket counts without a ping (clients ping every 30)
STATES = ("active", "away")
_local: dict[int, dict[str, tuple[str, float]]] = {}
_lock = threading.Lock()
_clients: dict[str, object] = {}


def _redis():
    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    if url not in _clients:
        import redis

        _clients[url] = redis.Redis.from_url(url, socket_timeout=2)
    return _clients[url]


def _key(user_id: int) -> str:
    return f"{current_app.config['REDIS_KEY_PREFIX']}:presence:{user_id}"


def seen(user_id: int, sid: str, state: str = "active") -> None:
    state = state if state in STATES else "active"
    now = time.time()
    r = _redis()
    if r is None:
        with _lock:
            _local.setdefault(user_id, {})[sid] = (state, now)
        return
    key = _key(user_id)
    with r.pipeline() as p:
        p.hset(key, sid, f"{state}:{now:.0f}")
        p.expire(key, TTL)
        p.execute()


def gone(user_id: int, sid: str) -> None:
    r = _redis()
    if r is None:
        with _lock:
            _local.get(user_id, {}).pop(sid, None)
        return
    r.hdel(_key(user_id), sid)


def _state(entries: dict[str, tuple[str, float]], now: float) -> str:
    live = [state for state, at in entries.values() if now - at < TTL]
    if not live:
        return "offline"
    return "active" if "active" in live else "away"


def of(user_ids) -> dict[int, str]:
    """{user id: "active" | "away" | "offline"} in one round trip."""
    ids = list(dict.fromkeys(user_ids))
    now = time.time()
    r = _redis()
    if r is None:
        with _lock:
            return {uid: _state(dict(_local.get(uid, {})), now) for uid in ids}
    with r.pipeline() as p:
        for uid in ids:
            p.hgetall(_key(uid))
        raw = p.execute()
    out = {}
    for uid, entries in zip(ids, raw, strict=True):
        parsed = {}
        for sid, value in entries.items():
            state, _sep, at = value.decode().partition(":")
            parsed[sid.decode()] = (state, float(at or 0))
        out[uid] = _state(parsed, now)
    return out


def is_online(user_id: int) -> bool:
    return of([user_id])[user_id] != "offline"
