"""The demo company's tasks: programmes of several themes on real posts, one with two
versions and runs on both, runs in progress, done and cancelled, tasks in every state, and a
full "my day" for each demo account; loading again changes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import func, select

from app.core import attachments, clock, links
from app.core.demo import load_all
from app.core.models import AuditEvent, Notification, User
from app.extensions import db
from app.orgchart import chart as charts
from app.tasks import services
from app.tasks.models import (
    Comment,
    Programme,
    ProgrammeVersion,
    Project,
    Reminder,
    Run,
    Step,
    Task,
    Watcher,
)

T = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)  # 12:00 in Moscow, the demo accounts' time zone
DEMO = ["admin@demo.crm", "ceo@demo.crm", "sales@demo.crm", "finance@demo.crm", "staff@demo.crm"]


def test_the_demo_company_has_tasks_and_programmes_and_loading_again_changes_nothing(
        monkeypatch):
    """The whole demo loaded once at a fixed time (a loader letting the clock go leaves it
    there), then checked part by part."""
    clock.freeze(T)
    monkeypatch.setattr(clock, "release", lambda: clock.freeze(T))
    load_all()
    demo = {u.email: u for u in db.session.scalars(select(User).where(User.email.in_(DEMO)))}
    check_programmes()
    check_an_edited_programme()
    check_runs(demo)
    check_tasks()
    check_days(demo)
    check_loading_again()


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def check_programmes():
    chart = charts.load()
    programmes = services.programmes()
    assert {"new client", "installation", "hiring"} <= {p.theme for p in programmes}
    assert len(programmes) >= 4
    for programme in programmes:
        stages = programme.current.stages
        assert 4 <= len(stages) <= 7, programme.name
        assert all(s.post_id in chart.posts for s in stages)
        assert all(chart.holding(chart.posts[s.post_id]).users for s in stages)
    stages = [s for p in programmes for s in p.current.stages]
    assert sum(1 for s in stages if s.checklist) >= 6
    assert any(s.needs_attachment for s in stages)
    # Parallel stages: two stages wait for the same one, and one waits for both.
    waits = Counter(k for s in stages for k in s.after)
    assert any(n >= 2 for n in waits.values())
    assert any(len(s.after) >= 2 for s in stages)


def check_an_edited_programme():
    twice = [p for p in services.programmes() if len(p.versions) >= 2]
    assert twice
    programme = twice[0]
    first, second = programme.versions[0], programme.versions[-1]
    assert [s.key for s in first.stages] != [s.key for s in second.stages]
    by_version = Counter(db.session.scalars(select(Run.version_id).where(
        Run.version_id.in_([first.id, second.id]))))
    assert by_version[first.id] >= 1 and by_version[second.id] >= 1
    for run in db.session.scalars(select(Run).where(Run.version_id == first.id)):
        assert len(run.stages) == len(first.stages)  # a run keeps the version it started on


def check_runs(demo):
    runs = list(db.session.scalars(select(Run)))
    states = Counter(r.status for r in runs)
    assert states["running"] >= 3 and states["done"] >= 1 and states["cancelled"] >= 1
    admin = demo["admin@demo.crm"]
    for run in runs:
        stages = {s.status for s in run.stages}
        if run.status == "done":
            assert stages == {"done"} and run.done_at is not None
            for stage in run.stages:
                if stage.needs_attachment:  # closed only with the signed paper attached
                    assert attachments.list_for(admin, services.OWNER, stage.id)
        elif run.status == "cancelled":
            assert "done" in stages and stages <= {"done", "cancelled"}
    running = [r for r in runs if r.status == "running"]
    # Some stages done, others open or waiting for them; at least one open stage overdue.
    assert any({"done", "open"} <= {s.status for s in r.stages} for r in running)
    assert any("waiting" in {s.status for s in r.stages} for r in running)
    overdue = [s for r in running for s in r.stages
               if s.status in ("open", "in_progress") and s.due_at < T]
    assert overdue
    # Parallel stages open together.
    assert any(sum(1 for s in r.stages if s.status in ("open", "in_progress", "done")
                   and s.stage_after and len(s.stage_after) == 1) >= 2 and
               len({tuple(s.stage_after) for s in r.stages if s.stage_after}) <
               len([s for s in r.stages if s.stage_after]) for r in running)
    assert any(r.link_kind == "project" for r in runs)
    if "client" in links.kinds():  # the client base is installed: runs for its clients
        linked = [r for r in runs if r.link_kind in ("client", "deal")]
        assert {r.link_kind for r in linked} == {"client", "deal"}
        for run in linked:
            link = links.resolve(run.started_by, run.link_kind, run.link_id)
            assert link is not None and link.title in run.title


def check_tasks():
    states = Counter(db.session.scalars(select(Task.status)))
    for status in ("requested", "open", "in_progress", "done", "cancelled", "declined",
                   "waiting"):
        assert states[status] >= 1, status
    assert sum(states.values()) >= 100
    assert db.session.scalar(select(func.count()).select_from(Project)) >= 3
    assert _count(Step, Step.done_at.is_not(None)) >= 20
    assert _count(Step, Step.done_at.is_(None)) >= 20
    assert _count(Watcher) >= 5
    assert _count(Comment) >= 8
    assert _count(Reminder, Reminder.sent_at.is_(None), Reminder.remind_at > T) >= 4
    declined = db.session.scalar(select(Task).where(Task.status == "declined"))
    assert declined.decline_reason
    # Links to demo mail resolve for the people doing the work.
    linked = list(db.session.scalars(select(Task).where(Task.link_kind == "message",
                                                        Task.run_id.is_(None))))
    assert len(linked) >= 2
    for task in linked:
        assert links.resolve(task.assignee, "message", task.link_id) is not None
    assert _count(Task, Task.link_kind == "project") >= 3
    # Made through the services: every task has its audit trail.
    created = _count(AuditEvent, AuditEvent.entity_type == "task",
                     AuditEvent.action == "task.create")
    assert created == _count(Task, Task.run_id.is_(None))


def check_days(demo):
    for email in DEMO:
        day = services.my_day(demo[email], T)
        assert day.overdue, email
        assert day.today, email
        assert day.upcoming, email
        assert day.undated, email
    staff = services.my_day(demo["staff@demo.crm"], T)
    assert len(staff.overdue) >= 2 and len(staff.today) >= 2 and len(staff.upcoming) >= 3
    assert staff.steps  # a step of someone else's task given to her
    assert any(t.run_id for t in staff.overdue + staff.today + staff.upcoming)  # a stage
    for head in ("ceo@demo.crm", "sales@demo.crm", "finance@demo.crm"):
        assert services.my_day(demo[head], T).requests, head
    board = services.board(demo["sales@demo.crm"], now=T)
    for column in ("open", "in_progress", "done"):
        assert board[column]["total"] >= 1, column
    assert services.due_counts([demo["staff@demo.crm"].id])[demo["staff@demo.crm"].id] >= 2


def check_loading_again():
    models = (Task, Step, Watcher, Comment, Reminder, Programme, ProgrammeVersion, Run, Project,
              AuditEvent, Notification)
    counts = [_count(m) for m in models]
    load_all()
    assert [_count(m) for m in models] == counts
