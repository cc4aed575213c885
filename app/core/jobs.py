"""Due-time jobs: modules register idempotent functions; a runner calls them.

`flask crm jobs run-due` (cron) and the in-process scheduler of `flask crm serve`
both call `run_due`. Each job works over rows with a due time and commits its
own transaction, so a failure in one job leaves the others' work in place.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from app.core.clock import utcnow
from app.extensions import db

log = logging.getLogger(__name__)
JobFn = Callable[[datetime], str]
_registry: dict[str, JobFn] = {}


def job(name: str) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        _registry[name] = fn
        return fn

    return register


def registered() -> dict[str, JobFn]:
    return dict(_registry)


def run_due(now: datetime | None = None, only: str | None = None) -> dict[str, str]:
    from app.core.models import JobRun

    now = now or utcnow()
    results = {}
    for name, fn in sorted(_registry.items()):
        if only and name != only:
            continue
        try:
            results[name] = fn(now) or "ok"
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            log.exception("job %s failed", name)
            results[name] = f"error: {exc}"
        run = db.session.scalar(select(JobRun).where(JobRun.name == name)) or JobRun(name=name)
        run.last_started_at, run.last_finished_at = now, utcnow()
        run.last_result = results[name][:1000]
        db.session.add(run)
        db.session.commit()
    return results


def start_scheduler(app, interval: float = 60.0) -> threading.Event:
    """Run due jobs every `interval` seconds in a daemon thread; set the event to stop."""
    stop = threading.Event()

    def loop():
        while not stop.wait(interval):
            with app.app_context():
                try:
                    run_due()
                except Exception:
                    log.exception("scheduled run failed")
                finally:
                    db.session.remove()

    threading.Thread(target=loop, name="crm-jobs", daemon=True).start()
    return stop
