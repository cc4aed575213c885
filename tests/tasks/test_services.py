"""The rules of tasks and programmes, through app.tasks.services against the real database.

The `office` chart: Dora directs the company; Helen heads Sales with Sam and Sara on the
Seller post; Fred heads Finance, whose Cashier post is vacant and so held from above by Fred.
Each refusal is checked the way a request ends: rolled back, then committed, and no row
anywhere (task, step, run, notification, feed event, audit) has changed.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from app.core import attachments, clock
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.models import Attachment, AuditEvent, FeedEvent, Notification
from app.extensions import db
from app.messaging import services as mail
from app.orgchart import services as org
from app.orgchart.models import Assignment
from app.tasks import services as tasks
from app.tasks.models import (
    Comment,
    Programme,
    ProgrammeVersion,
    Project,
    Reminder,
    Run,
    StageTemplate,
    Step,
    Task,
    Watcher,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
MODELS = (Task, Step, Watcher, Comment, Reminder, Project, Programme, ProgrammeVersion,
          StageTemplate, Run, Attachment, Notification, FeedEvent, AuditEvent)


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze(NOW)
    yield
    clock.release()


# --- helpers ------------------------------------------------------------------------------

def row_counts() -> dict[str, int]:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in MODELS}


def task_row(task_id: int) -> dict:
    """Every column of a task as stored."""
    db.session.expire_all()
    task = db.session.get(Task, task_id)
    return {c.key: getattr(task, c.key) for c in Task.__table__.columns}


def refused(error, call, *args, **kwargs):
    """`call` raises `error`; after the rollback every request does on an error, and a commit,
    no row anywhere has changed, nor any column of the tasks there are."""
    db.session.commit()
    before = row_counts()
    rows = {t: task_row(t) for t in db.session.scalars(select(Task.id))}
    with pytest.raises(error) as info:
        call(*args, **kwargs)
    db.session.rollback()
    db.session.commit()
    assert row_counts() == before
    assert {t: task_row(t) for t in rows} == rows
    assert info.value.message
    return info.value


def new_task(actor, title="Call Acme", **data):
    return tasks.create_task(actor, {"title": title, **data})


def notes(user, kind: str | None = None) -> list[Notification]:
    stmt = select(Notification).where(Notification.user_id == user.id).order_by(Notification.id)
    if kind:
        stmt = stmt.where(Notification.kind == kind)
    return list(db.session.scalars(stmt))


def told(*users) -> dict[str, int]:
    """How many notifications each of these people has."""
    return {u.name: len(notes(u)) for u in users}


def events(user, kind: str = "task.changed") -> list[dict]:
    """The feed events a person got, once committed (payloads, oldest first)."""
    db.session.commit()
    return [e.payload for e in db.session.scalars(
        select(FeedEvent).where(FeedEvent.user_id == user.id, FeedEvent.kind == kind)
        .order_by(FeedEvent.seq))]


def actions(entity_type: str, entity_id) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id))
        .order_by(AuditEvent.id)))


def ids(rows) -> set[int]:
    return {r.id for r in rows}


def upload(name="act.pdf", body=b"Signed by both parties.") -> FileStorage:
    return FileStorage(stream=io.BytesIO(body), filename=name, content_type="application/pdf")


def hand_over(admin, post, old, new) -> None:
    """`new` starts holding the post, then `old` leaves it."""
    org.assign(admin, {"post_id": post.id, "user_id": new.id})
    assignment = db.session.scalar(select(Assignment).where(
        Assignment.post_id == post.id, Assignment.user_id == old.id,
        Assignment.ended_at.is_(None)))
    org.end_assignment(admin, assignment.id)


# --- giving work down the chart -----------------------------------------------------------

def test_work_named_for_nobody_is_ones_own_and_nobody_is_told(office):
    o = office
    mine = new_task(o.Sam)
    also_mine = new_task(o.Sam, assignee=f"user:{o.Sam.id}")
    for task in (mine, also_mine):
        assert (task.assignee_id, task.creator_id, task.status, task.requested_of_id) == (
            o.Sam.id, o.Sam.id, "open", None)
        assert task.opened_at == NOW
    assert notes(o.Sam) == []
    assert [e["id"] for e in events(o.Sam)] == [mine.id, also_mine.id]
    assert actions("task", mine.id) == ["task.create"]


def test_a_head_gives_work_to_a_subordinate_who_is_told_and_sees_it_live(office):
    o = office
    task = new_task(o.Helen, assignee=f"user:{o.Sam.id}", due_at=(NOW + timedelta(hours=2)).isoformat())
    assert (task.assignee_id, task.status, task.post_id) == (o.Sam.id, "open", None)
    [note] = notes(o.Sam)
    assert (note.kind, note.body, note.url) == ("task", "Call Acme", f"/tasks/{task.id}")
    assert "Helen" in note.title
    assert notes(o.Helen) == [] and notes(o.Sara) == []
    [seen] = events(o.Sam)
    assert {k: seen[k] for k in ("id", "status", "assignee_id", "creator_id")} == {
        "id": task.id, "status": "open", "assignee_id": o.Sam.id, "creator_id": o.Helen.id}
    assert "tasks_due" in seen["counts"]
    assert [e["id"] for e in events(o.Helen)] == [task.id]
    assert events(o.Sara) == [] and events(o.Fred) == []
    create = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "task.create"))
    assert (create.actor_id, create.entity_id, create.after["assignee_id"]) == (
        o.Helen.id, str(task.id), o.Sam.id)


def test_a_post_in_scope_means_its_holder(office):
    o = office
    task = new_task(o.Helen, assignee=f"post:{o.seller.id}")
    assert (task.assignee_id, task.post_id, task.status, task.requested_of_id) == (
        o.Sam.id, o.seller.id, "open", None)  # Sam took the post first
    assert len(notes(o.Sam)) == 1


def test_a_vacant_post_in_scope_goes_to_the_holder_from_above(office):
    o = office
    task = new_task(o.Dora, assignee=f"post:{o.cashier.id}")
    assert (task.assignee_id, task.post_id, task.status, task.requested_of_id) == (
        o.Fred.id, o.cashier.id, "open", None)
    assert len(notes(o.Fred)) == 1
    own = new_task(o.Fred, "Count the till", assignee=f"post:{o.cashier.id}")
    assert (own.assignee_id, own.status) == (o.Fred.id, "open")


def test_ones_own_post_shared_with_a_peer_is_not_a_way_round_the_chart(office):
    """Sara and Sam both hold Seller: Sara giving work to her own post keeps it hers; it
    never lands, unasked, on Sam, who is not below her."""
    o = office
    task = new_task(o.Sara, assignee=f"post:{o.seller.id}")
    assert (task.assignee_id, task.post_id, task.status) == (o.Sara.id, o.seller.id, "open")
    assert notes(o.Sam) == []


def test_a_colleague_outside_ones_scope_gets_a_request_to_the_head_of_their_unit(office):
    o = office
    asked = new_task(o.Sam, "Cover my calls", assignee=f"user:{o.Sara.id}")
    assert (asked.status, asked.assignee_id, asked.requested_of_id, asked.opened_at) == (
        "requested", o.Sara.id, o.Helen.id, None)
    [note] = notes(o.Helen)
    assert "Sam" in note.title and note.url == f"/tasks/{asked.id}"
    assert notes(o.Sara) == []  # not hers until the head says so
    assert tasks.my_day(o.Sara).undated == []
    assert ids(tasks.my_day(o.Helen).requests) == {asked.id}
    assert tasks.due_counts([o.Helen.id, o.Sara.id]) == {o.Helen.id: 1}


def test_another_units_post_or_person_goes_to_the_head_who_decides_for_it(office):
    o = office
    pay = new_task(o.Sam, "Pay the bill", assignee=f"post:{o.cashier.id}")
    assert (pay.status, pay.requested_of_id, pay.post_id) == ("requested", o.Fred.id, o.cashier.id)
    # a unit's head answers to the head above: Dora decides on work for Fred himself
    audit_it = new_task(o.Sam, "Audit", assignee=f"user:{o.Fred.id}")
    assert (audit_it.status, audit_it.assignee_id, audit_it.requested_of_id) == (
        "requested", o.Fred.id, o.Dora.id)
    up = new_task(o.Sam, "Sign my leave", assignee=f"user:{o.Helen.id}")
    assert (up.status, up.requested_of_id) == ("requested", o.Dora.id)
    assert [len(notes(u)) for u in (o.Fred, o.Dora, o.Helen)] == [1, 2, 0]


@pytest.mark.parametrize("token", ["boss", "user:", "user:abc", "post:-1", "team:3", "user:0",
                                   "user:99999999", "post:99999999", "user:1234567890123"])
def test_an_unknown_assignee_is_refused(office, token):
    err = refused(ValidationError, new_task, office.Helen, assignee=token)
    assert "assignee" in err.fields


def test_people_whom_no_head_can_accept_work_for_are_refused(office, make_user):
    o = office
    outsider = make_user("Otto")  # holds no post
    gone = make_user("Gone", active=False)
    err = refused(ValidationError, new_task, o.Sam, assignee=f"user:{outsider.id}")
    assert "assignee" in err.fields
    refused(ValidationError, new_task, o.Helen, assignee=f"user:{gone.id}")


def test_bad_fields_of_a_new_task_are_refused(office):
    o = office
    for data in ({"title": ""}, {"title": "   "}, {"title": "x" * 301}, {"title": 5},
                 {"title": "x", "priority": "whenever"}, {"title": "x", "watchers": [99999999]},
                 {"title": "x", "watchers": ["me"]}, {"title": "x", "due_at": "tomorrow"},
                 {"title": "x", "steps": [{"title": ""}]},
                 {"title": "x", "steps": [{"title": "a", "assignee_id": 99999999}]},
                 {"title": "x", "link": "message:99999999"}, {"title": "x", "link": "nothing"}):
        refused(ValidationError, tasks.create_task, o.Helen, data)


# --- a request: the head accepts or declines ---------------------------------------------

def test_the_head_accepts_and_the_work_opens_for_the_person_asked(office):
    o = office
    asked = new_task(o.Sam, "Cover my calls", assignee=f"user:{o.Sara.id}")
    db.session.commit()
    tasks.decide(o.Helen, asked.id, {"accept": True})
    assert (asked.status, asked.assignee_id, asked.opened_at) == ("open", o.Sara.id, NOW)
    assert "accepted" in notes(o.Sam)[-1].title
    assert len(notes(o.Sara)) == 1 and "Helen" in notes(o.Sara)[0].title
    assert ids(tasks.my_day(o.Sara).undated) == {asked.id}
    assert tasks.my_day(o.Helen).requests == []
    assert [e["status"] for e in events(o.Sara)] == ["requested", "open"]
    assert actions("task", asked.id) == ["task.create", "task.accept"]


def test_the_head_may_give_accepted_work_to_anyone_below_them_but_nobody_else(office):
    o = office
    pay = new_task(o.Sam, "Pay the bill", assignee=f"post:{o.cashier.id}")
    err = refused(ValidationError, tasks.decide, o.Fred, pay.id,
                  {"accept": True, "assignee_id": o.Helen.id})
    assert "assignee_id" in err.fields
    refused(ValidationError, tasks.decide, o.Fred, pay.id,
            {"accept": True, "assignee_id": 99999999})
    refused(ValidationError, tasks.decide, o.Fred, pay.id, {"accept": "maybe"})
    refused(ValidationError, tasks.decide, o.Fred, pay.id, {})
    asked = new_task(o.Sam, "Cover my calls", assignee=f"user:{o.Sara.id}")
    tasks.decide(o.Helen, asked.id, {"accept": True, "assignee_id": o.Sam.id})
    assert (asked.status, asked.assignee_id) == ("open", o.Sam.id)
    tasks.decide(o.Fred, pay.id, {"accept": True})
    assert (pay.status, pay.assignee_id, pay.post_id) == ("open", o.Fred.id, o.cashier.id)


def test_a_decline_needs_a_reason_and_the_setter_is_told(office):
    o = office
    pay = new_task(o.Sam, "Pay the bill", assignee=f"post:{o.cashier.id}")
    for reason in ("", "   "):
        err = refused(ValidationError, tasks.decide, o.Fred, pay.id,
                      {"accept": False, "reason": reason})
        assert "reason" in err.fields
    before = len(notes(o.Sam))
    tasks.decide(o.Fred, pay.id, {"accept": False, "reason": "  No budget this week  "})
    assert (pay.status, pay.decline_reason) == ("declined", "No budget this week")
    assert len(notes(o.Sam)) == before + 1 and "declined" in notes(o.Sam)[-1].title
    decline = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "task.decline"))
    assert decline.after["reason"] == "No budget this week" and decline.actor_id == o.Fred.id
    assert events(o.Sam)[-1]["status"] == "declined"


def test_only_the_head_asked_decides(office, admin):
    o = office
    pay = new_task(o.Sam, "Pay the bill", assignee=f"post:{o.cashier.id}")
    refused(PermissionDenied, tasks.decide, o.Sam, pay.id, {"accept": True})  # the one who asks
    refused(PermissionDenied, tasks.decide, o.Dora, pay.id, {"accept": True})  # sees all, not asked
    refused(NotFound, tasks.decide, o.Helen, pay.id, {"accept": True})  # cannot even see it
    asked = new_task(o.Sam, "Cover my calls", assignee=f"user:{o.Sara.id}")
    refused(PermissionDenied, tasks.decide, o.Sara, asked.id, {"accept": True})  # the one asked for
    tasks.decide(admin, pay.id, {"accept": False, "reason": "Not ours"})
    assert pay.status == "declined"


def test_a_decided_request_cannot_be_decided_again(office):
    o = office
    pay = new_task(o.Sam, "Pay the bill", assignee=f"post:{o.cashier.id}")
    tasks.decide(o.Fred, pay.id, {"accept": True})
    refused(Conflict, tasks.decide, o.Fred, pay.id, {"accept": True})
    refused(Conflict, tasks.decide, o.Fred, pay.id, {"accept": False, "reason": "Changed my mind"})
    declined = new_task(o.Sam, "Pay again", assignee=f"post:{o.cashier.id}")
    tasks.decide(o.Fred, declined.id, {"accept": False, "reason": "No"})
    refused(Conflict, tasks.decide, o.Fred, declined.id, {"accept": True})
    plain = new_task(o.Helen, assignee=f"user:{o.Sam.id}")  # never a request
    refused(Conflict, tasks.decide, o.Helen, plain.id, {"accept": True})


def test_work_given_outside_ones_scope_later_becomes_a_request_too(office):
    o = office
    task = new_task(o.Sam)
    tasks.update_task(o.Sam, task.id, {"assignee": f"user:{o.Sara.id}"})
    assert (task.status, task.assignee_id, task.requested_of_id) == (
        "requested", o.Sara.id, o.Helen.id)
    assert len(notes(o.Helen)) == 1 and notes(o.Sara) == []


def test_a_request_taken_back_by_its_setter_is_open_work_again(office):
    o = office
    asked = new_task(o.Sam, "Cover my calls", assignee=f"user:{o.Sara.id}")
    tasks.update_task(o.Sam, asked.id, {"assignee": ""})
    assert (asked.status, asked.assignee_id, asked.requested_of_id) == ("open", o.Sam.id, None)
    assert ids(tasks.my_day(o.Sam).undated) == {asked.id}
    assert tasks.my_day(o.Helen).requests == []
    refused(Conflict, tasks.decide, o.Helen, asked.id, {"accept": True})


# --- steps --------------------------------------------------------------------------------

def stepped(actor, *steps, **data) -> Task:
    return new_task(actor, steps=[s if isinstance(s, dict) else {"title": s} for s in steps], **data)


def check(actor, task, n, done=True):
    return tasks.update_step(actor, task.id, task.steps[n - 1].id, {"done": done})


def checked(task) -> list[bool]:
    db.session.expire_all()
    return [s.done_at is not None for s in db.session.get(Task, task.id).steps]


def test_a_step_is_checked_only_after_the_one_before_it(office):
    o = office
    task = stepped(o.Helen, "Prepare", "Call", "Report", assignee=f"user:{o.Sam.id}")
    err = refused(Conflict, check, o.Sam, task, 2)
    assert "Prepare" in err.message
    refused(Conflict, check, o.Sam, task, 3)
    check(o.Sam, task, 1)
    assert task.status == "in_progress"  # the first step checked starts the work
    assert (task.steps[0].done_by_id, task.steps[0].done_at) == (o.Sam.id, NOW)
    refused(Conflict, check, o.Sam, task, 3)
    check(o.Sam, task, 2)
    check(o.Sam, task, 3)
    assert checked(task) == [True, True, True]
    assert actions("task", task.id).count("task.step") == 3


def test_a_parallel_step_goes_alongside_the_one_before_it_and_the_next_waits_for_both(office):
    o = office
    task = stepped(o.Sam, "Measure", {"title": "Order parts", "parallel": True}, "Install")
    check(o.Sam, task, 2)
    assert checked(task) == [False, True, False]
    # "Install" follows both: the parallel step done does not let it skip "Measure"
    refused(Conflict, check, o.Sam, task, 3)
    check(o.Sam, task, 1)
    check(o.Sam, task, 3)
    assert checked(task) == [True, True, True]


def test_a_step_is_unchecked_only_while_the_steps_after_it_are_not_done(office):
    o = office
    task = stepped(o.Sam, "One", "Two", "Three")
    for n in (1, 2, 3):
        check(o.Sam, task, n)
    refused(Conflict, check, o.Sam, task, 1, False)
    refused(Conflict, check, o.Sam, task, 2, False)
    check(o.Sam, task, 3, False)
    check(o.Sam, task, 2, False)
    assert checked(task) == [True, False, False]
    check(o.Sam, task, 1, False)
    assert (task.steps[0].done_at, task.steps[0].done_by_id) == (None, None)
    # a parallel step done after it does not hold it; a later sequential one does
    par = stepped(o.Sam, "A", {"title": "B", "parallel": True}, "C")
    for n in (1, 2, 3):
        check(o.Sam, par, n)
    refused(Conflict, check, o.Sam, par, 1, False)
    check(o.Sam, par, 3, False)
    check(o.Sam, par, 1, False)
    assert checked(par) == [False, True, False]
    # checking what is already checked changes nothing
    check(o.Sam, par, 2)
    assert checked(par) == [False, True, False]


def test_a_task_is_not_closed_while_a_required_step_is_open(office):
    o = office
    task = stepped(o.Helen, "Call", "Send the offer", {"title": "Ask for a review", "required": False},
                   assignee=f"user:{o.Sam.id}")
    check(o.Sam, task, 1)
    err = refused(Conflict, tasks.set_status, o.Sam, task.id, {"action": "done"})
    assert "Send the offer" in err.message
    assert task_row(task.id)["status"] == "in_progress"
    check(o.Sam, task, 2)
    told_before = len(notes(o.Helen))
    tasks.set_status(o.Sam, task.id, {"action": "done"})  # the optional step may stay open
    assert (task.status, task.done_at, task.done_by_id) == ("done", NOW, o.Sam.id)
    assert checked(task) == [True, True, False]
    assert len(notes(o.Helen)) == told_before + 1 and "Sam" in notes(o.Helen)[-1].title
    assert events(o.Helen)[-1]["status"] == "done"


def test_a_steps_assignee_checks_their_step_and_changes_nothing_else(office):
    o = office
    task = stepped(o.Helen, {"title": "Price it", "assignee_id": o.Sara.id}, "Call",
                   assignee=f"user:{o.Sam.id}")
    assert tasks.get_task(o.Sara, task.id).id == task.id  # she sees the task of her step
    assert [s.id for s in tasks.my_day(o.Sara).steps] == [task.steps[0].id]
    assert task.id in [e["id"] for e in events(o.Sara)]
    refused(PermissionDenied, tasks.update_step, o.Sara, task.id, task.steps[0].id,
            {"title": "Guess it"})
    refused(PermissionDenied, tasks.update_step, o.Sara, task.id, task.steps[0].id,
            {"done": True, "due_at": NOW.isoformat()})
    refused(PermissionDenied, tasks.update_task, o.Sara, task.id, {"title": "Mine now"})
    refused(PermissionDenied, tasks.set_status, o.Sara, task.id, {"action": "done"})
    refused(PermissionDenied, tasks.add_step, o.Sara, task.id, {"title": "More"})
    refused(PermissionDenied, tasks.delete_step, o.Sara, task.id, task.steps[1].id)
    check(o.Sara, task, 1)
    refused(PermissionDenied, check, o.Sara, task, 2)  # not her step
    assert checked(task) == [True, False]
    assert task.steps[0].done_by_id == o.Sara.id and tasks.my_day(o.Sara).steps == []
    refused(NotFound, check, o.Fred, task, 2)  # cannot see the task at all


def test_steps_change_only_while_the_work_is_open(office):
    o = office
    task = stepped(o.Sam, "One", {"title": "Two", "required": False})
    refused(NotFound, tasks.update_step, o.Sam, task.id, 99999999, {"done": True})
    other = stepped(o.Sam, "Elsewhere")
    refused(NotFound, tasks.update_step, o.Sam, task.id, other.steps[0].id, {"done": True})
    refused(ValidationError, tasks.update_step, o.Sam, task.id, task.steps[0].id, {"done": "perhaps"})
    refused(ValidationError, tasks.update_step, o.Sam, task.id, task.steps[0].id, {"title": "  "})
    refused(ValidationError, tasks.add_step, o.Sam, task.id, {"title": ""})
    refused(ValidationError, tasks.add_step, o.Sam, task.id, {"title": "X", "assignee_id": 99999999})
    added = tasks.add_step(o.Sam, task.id, {"title": "Three", "parallel": True})
    assert [(s.position, s.title) for s in task.steps] == [(1, "One"), (2, "Two"), (3, "Three")]
    tasks.delete_step(o.Sam, task.id, task.steps[1].id)
    assert [(s.position, s.title) for s in task.steps] == [(1, "One"), (2, "Three")]
    assert added.parallel
    check(o.Sam, task, 1)
    check(o.Sam, task, 2)
    tasks.set_status(o.Sam, task.id, {"action": "done"})
    refused(Conflict, check, o.Sam, task, 1, False)
    refused(Conflict, tasks.add_step, o.Sam, task.id, {"title": "Late"})
    refused(Conflict, tasks.update_step, o.Sam, task.id, task.steps[0].id, {"title": "Renamed"})
    refused(Conflict, tasks.delete_step, o.Sam, task.id, task.steps[0].id)
    asked = stepped(o.Sam, "First", assignee=f"user:{o.Sara.id}")
    refused(Conflict, check, o.Sam, asked, 1)  # a request is not work yet


# --- times, reminders, editing, cancelling, reopening -------------------------------------

def test_a_due_time_before_the_start_is_refused(office):
    o = office
    err = refused(ValidationError, new_task, o.Helen, start_at=NOW.isoformat(),
                  due_at=(NOW - timedelta(minutes=1)).isoformat())
    assert "due_at" in err.fields
    task = new_task(o.Helen, start_at=NOW.isoformat(), due_at=(NOW + timedelta(days=1)).isoformat())
    err = refused(ValidationError, tasks.update_task, o.Helen, task.id,
                  {"title": "Renamed", "due_at": (NOW - timedelta(hours=1)).isoformat()})
    assert "due_at" in err.fields
    refused(ValidationError, tasks.update_task, o.Helen, task.id,
            {"start_at": (NOW + timedelta(days=2)).isoformat()})
    tasks.update_task(o.Helen, task.id, {"start_at": (NOW + timedelta(days=1)).isoformat()})
    assert task.start_at == task.due_at == NOW + timedelta(days=1)  # due at the start is fine


def test_a_reminder_is_for_a_time_still_to_come(office):
    o = office
    task = new_task(o.Helen, assignee=f"user:{o.Sam.id}")
    for when in (NOW - timedelta(minutes=1), NOW):
        err = refused(ValidationError, tasks.add_reminder, o.Sam, task.id,
                      {"remind_at": when.isoformat()})
        assert "remind_at" in err.fields
    refused(ValidationError, tasks.add_reminder, o.Sam, task.id, {"remind_at": "soon"})
    refused(ValidationError, tasks.add_reminder, o.Sam, task.id, {})
    refused(NotFound, tasks.add_reminder, o.Fred, task.id,
            {"remind_at": (NOW + timedelta(hours=1)).isoformat()})
    reminder = tasks.add_reminder(o.Sam, task.id, {"remind_at": (NOW + timedelta(hours=1)).isoformat(),
                                                   "note": " Call first "})
    assert (reminder.user_id, reminder.remind_at, reminder.note, reminder.sent_at) == (
        o.Sam.id, NOW + timedelta(hours=1), "Call first", None)
    assert [r.id for r in tasks.reminders_of(o.Sam, task.id)] == [reminder.id]
    assert tasks.reminders_of(o.Helen, task.id) == []  # one's own reminders only
    refused(NotFound, tasks.delete_reminder, o.Helen, reminder.id)
    tasks.delete_reminder(o.Sam, reminder.id)
    assert tasks.reminders_of(o.Sam, task.id) == []


def test_only_the_setter_and_the_one_doing_it_edit_a_task(office, admin):
    o = office
    task = new_task(o.Dora, assignee=f"user:{o.Sam.id}")
    assert tasks.get_task(o.Helen, task.id).id == task.id  # Helen sees her subordinate's work
    err = refused(PermissionDenied, tasks.update_task, o.Helen, task.id, {"title": "Mine"})
    assert "set this task" in err.message
    refused(NotFound, tasks.update_task, o.Fred, task.id, {"title": "Mine"})
    refused(NotFound, tasks.set_status, o.Fred, task.id, {"action": "start"})
    refused(NotFound, tasks.update_task, o.Sam, 99999999, {"title": "Nothing"})
    tasks.update_task(o.Sam, task.id, {"title": "Call Acme today", "priority": "high"})
    tasks.update_task(o.Dora, task.id, {"description": "**Now**"})
    tasks.update_task(admin, task.id, {"priority": "urgent"})
    assert (task.title, task.priority, task.description) == ("Call Acme today", "urgent", "**Now**")
    assert "<strong>Now</strong>" in task.description_html
    assert actions("task", task.id) == ["task.create", "task.update", "task.update", "task.update"]
    changes = [e.after for e in tasks.history(o.Sam, task.id)]
    assert changes[1]["title"] == "Call Acme today"
    refused(ValidationError, tasks.update_task, o.Sam, task.id, {"title": "  "})
    refused(ValidationError, tasks.update_task, o.Sam, task.id, {"priority": "someday"})


def test_only_the_setter_cancels(office, admin):
    o = office
    task = new_task(o.Dora, assignee=f"user:{o.Sam.id}")
    err = refused(PermissionDenied, tasks.set_status, o.Sam, task.id, {"action": "cancel"})
    assert "set this task" in err.message
    refused(PermissionDenied, tasks.set_status, o.Helen, task.id, {"action": "cancel"})
    refused(ValidationError, tasks.set_status, o.Dora, task.id, {"action": "explode"})
    tasks.set_status(o.Dora, task.id, {"action": "cancel"})
    assert task.status == "cancelled"
    assert events(o.Sam)[-1]["status"] == "cancelled"
    assert tasks.my_day(o.Sam).undated == []
    refused(Conflict, tasks.set_status, o.Dora, task.id, {"action": "cancel"})
    refused(Conflict, tasks.set_status, o.Dora, task.id, {"action": "reopen"})
    refused(Conflict, tasks.update_task, o.Dora, task.id, {"title": "Again"})
    other = new_task(o.Dora, assignee=f"user:{o.Sam.id}")
    tasks.set_status(admin, other.id, {"action": "cancel"})
    assert other.status == "cancelled"
    asked = new_task(o.Sam, "Cover my calls", assignee=f"user:{o.Sara.id}")
    tasks.set_status(o.Sam, asked.id, {"action": "cancel"})  # a request withdrawn
    assert asked.status == "cancelled" and tasks.my_day(o.Helen).requests == []


def test_work_starts_closes_and_reopens(office):
    o = office
    task = new_task(o.Helen, assignee=f"user:{o.Sam.id}")
    refused(Conflict, tasks.set_status, o.Sam, task.id, {"action": "reopen"})
    tasks.set_status(o.Sam, task.id, {"action": "start"})
    assert task.status == "in_progress"
    refused(Conflict, tasks.set_status, o.Sam, task.id, {"action": "start"})
    tasks.set_status(o.Sam, task.id, {"action": "done"})
    refused(Conflict, tasks.set_status, o.Sam, task.id, {"action": "done"})
    refused(Conflict, tasks.update_task, o.Sam, task.id, {"title": "Late"})
    tasks.set_status(o.Helen, task.id, {"action": "reopen"})
    assert (task.status, task.done_at, task.done_by_id) == ("open", None, None)
    tasks.update_task(o.Sam, task.id, {"title": "Call Acme again"})
    assert actions("task", task.id) == ["task.create", "task.start", "task.done", "task.reopen",
                                        "task.update"]
    asked = new_task(o.Sam, "Cover", assignee=f"user:{o.Sara.id}")
    refused(Conflict, tasks.set_status, o.Sam, asked.id, {"action": "start"})
    refused(Conflict, tasks.set_status, o.Sam, asked.id, {"action": "done"})


# --- programmes: templates and versions ---------------------------------------------------

def stage(title, post, **kw) -> dict:
    return {"title": title, "post_id": post.id, **kw}


def programme(actor, *stages, name="Onboarding", theme="new client"):
    return tasks.create_programme(actor, {"theme": theme, "name": name, "stages": list(stages)})


def test_a_template_must_make_sense(office):
    o = office
    bad = {
        "no stages": [],
        "a cycle": [stage("A", o.seller, key="a", after=["c"]), stage("B", o.seller, key="b"),
                    stage("C", o.seller, key="c")],
        "waits for itself": [stage("A", o.seller, key="a", after=["a"])],
        "an unknown post": [stage("A", o.seller), {"title": "B", "post_id": 99999999}],
        "a duplicate key": [stage("A", o.seller, key="x"), stage("B", o.head, key="x")],
        "a key taken by default": [stage("A", o.seller, key="s2"), stage("B", o.head)],
        "after an unknown key": [stage("A", o.seller, key="a"), stage("B", o.head, after=["zz"])],
        "a bad key": [stage("A", o.seller, key="no spaces")],
        "a zero duration": [stage("A", o.seller, duration_hours=0)],
    }
    for why, stages in bad.items():
        err = refused(ValidationError, tasks.create_programme, o.Helen,
                      {"theme": "x", "name": why, "stages": stages})
        assert "stages" in err.fields, why
    refused(ValidationError, tasks.create_programme, o.Helen, {"theme": "x", "name": "No list"})
    refused(ValidationError, tasks.create_programme, o.Helen,
            {"theme": "", "name": "x", "stages": [stage("A", o.seller)]})
    err = refused(PermissionDenied, programme, o.Sam, stage("A", o.seller))
    assert "heads" in err.message


def test_a_template_keeps_its_stages_in_order_with_default_waits(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller, checklist=[" Print ", " ", "Sign"]),
                  stage("Invoice", o.cashier), stage("Check", o.head, key="chk", after=["s1"]))
    [version] = p.versions
    assert [(s.key, s.after, s.position) for s in version.stages] == [
        ("s1", [], 1), ("s2", ["s1"], 2), ("chk", ["s1"], 3)]
    assert version.stages[0].checklist == ["Print", "Sign"]
    assert actions("programme", p.id) == ["programme.create"]


def test_changing_the_stages_makes_a_new_version_and_a_started_run_keeps_its_own(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller), stage("Invoice", o.cashier))
    run = tasks.start_run(o.Helen, {"programme_id": p.id})
    db.session.commit()
    # only the name and theme: the same version
    tasks.update_programme(o.Helen, p.id, {"theme": "clients", "name": "Welcome", "stages": [
        stage("Sign", o.seller), stage("Invoice", o.cashier)]})
    assert (p.name, p.theme, [v.number for v in p.versions]) == ("Welcome", "clients", [1])
    tasks.update_programme(o.Helen, p.id, {"theme": "clients", "name": "Welcome", "stages": [
        stage("Sign", o.seller), stage("Invoice", o.cashier), stage("Thank", o.head)]})
    assert [v.number for v in p.versions] == [1, 2]
    assert [s.title for s in p.versions[0].stages] == ["Sign", "Invoice"]
    db.session.commit()
    db.session.expire_all()
    old = tasks.get_run(o.Helen, run.id)
    assert old.version.number == 1 and [s.title for s in old.stages] == ["Sign", "Invoice"]
    new = tasks.start_run(o.Helen, {"programme_id": p.id})
    assert new.version.number == 2 and [s.title for s in new.stages] == ["Sign", "Invoice", "Thank"]
    # a changed duration alone is a change of the stages too
    tasks.update_programme(o.Helen, p.id, {"theme": "clients", "name": "Welcome", "stages": [
        stage("Sign", o.seller, duration_hours=48), stage("Invoice", o.cashier),
        stage("Thank", o.head)]})
    assert [v.number for v in p.versions] == [1, 2, 3]
    refused(ValidationError, tasks.update_programme, o.Helen, p.id,
            {"theme": "x", "name": "x", "stages": []})
    refused(PermissionDenied, tasks.update_programme, o.Sam, p.id,
            {"theme": "x", "name": "x", "stages": [stage("A", o.seller)]})
    refused(NotFound, tasks.update_programme, o.Helen, 99999999,
            {"theme": "x", "name": "x", "stages": [stage("A", o.seller)]})


def test_an_archived_programme_does_not_start(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller))
    tasks.archive_programme(o.Helen, p.id)
    assert p.id not in ids(tasks.programmes()) and p.id in ids(tasks.programmes(True))
    refused(Conflict, tasks.start_run, o.Helen, {"programme_id": p.id})
    refused(Conflict, tasks.update_programme, o.Helen, p.id,
            {"theme": "x", "name": "x", "stages": [stage("A", o.seller)]})
    refused(NotFound, tasks.start_run, o.Helen, {"programme_id": 99999999})
    refused(ValidationError, tasks.start_run, o.Helen, {"programme_id": "one"})


# --- programme runs -----------------------------------------------------------------------

def done(actor, stage_task):
    return tasks.set_status(actor, stage_task.id, {"action": "done"})


def statuses(run) -> dict[str, str]:
    return {s.stage_key: s.status for s in run.stages}


def test_a_first_post_with_nobody_to_hold_it_stops_the_run_before_anything_is_made(office, admin,
                                                                                    make_user):
    o = office
    branch = org.create_unit(admin, {"name": "Branch", "kind": "company"})
    clerk = org.create_post(admin, {"unit_id": branch.id, "title": "Clerk"})
    p = programme(o.Dora, stage("File it", clerk), stage("Check", o.head))
    err = refused(ValidationError, tasks.start_run, o.Dora, {"programme_id": p.id})
    assert "Clerk" in err.message
    # nor can a task be given to that post, in one's scope or as a request
    assert "Clerk" in refused(ValidationError, new_task, admin, assignee=f"post:{clerk.id}").message
    assert "Clerk" in refused(ValidationError, new_task, o.Dora, assignee=f"post:{clerk.id}").message
    assert actions("programme", p.id) == ["programme.create"]
    assert db.session.scalar(select(func.count()).select_from(Run)) == 0
    # a later stage's empty post does not stop the start; the starter hears when it opens
    later = programme(o.Dora, stage("Check", o.head), stage("File it", clerk), name="Later")
    run = tasks.start_run(o.Dora, {"programme_id": later.id})
    done(o.Helen, run.stages[0])
    assert (run.stages[1].status, run.stages[1].assignee_id) == ("open", None)
    assert "nobody" in notes(o.Dora)[-1].title
    clara = make_user("Clara")
    org.assign(admin, {"post_id": clerk.id, "user_id": clara.id})  # someone takes the post
    assert run.stages[1].assignee_id == clara.id
    assert ids(tasks.my_day(clara).upcoming) == {run.stages[1].id}  # due a day after it opened


def test_stages_open_when_those_they_wait_for_are_done_and_branches_join(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller, key="sign"),
                  stage("Invoice", o.cashier, key="pay", duration_hours=8),
                  stage("Welcome call", o.head, key="call", after=["sign"]),
                  stage("Install", o.seller, key="install", after=["pay", "call"]))
    project = tasks.create_project(o.Helen, {"name": "Acme roll-out"})
    run = tasks.start_run(o.Helen, {"programme_id": p.id, "link": f"project:{project.id}"})
    assert run.title == "Onboarding: Acme roll-out"
    assert (run.link_kind, run.link_id, run.status) == ("project", project.id, "running")
    assert statuses(run) == {"sign": "open", "pay": "waiting", "call": "waiting",
                             "install": "waiting"}
    sign, pay, call, install = run.stages
    assert (sign.assignee_id, sign.post_id, sign.due_at) == (
        o.Sam.id, o.seller.id, NOW + timedelta(hours=24))
    assert (pay.planned_start_at, pay.planned_due_at) == (
        NOW + timedelta(hours=24), NOW + timedelta(hours=32))
    assert install.planned_start_at == NOW + timedelta(hours=48)  # after the longer branch
    assert pay.assignee_id is None and notes(o.Fred) == []
    assert "stage" in notes(o.Sam)[-1].title
    refused(NotFound, done, o.Fred, pay)  # not his yet: he cannot even see it
    clock.advance(timedelta(hours=3))
    done(o.Sam, sign)
    assert statuses(run) == {"sign": "done", "pay": "open", "call": "open", "install": "waiting"}
    assert (pay.assignee_id, pay.opened_at) == (o.Fred.id, NOW + timedelta(hours=3))  # from above
    assert call.assignee_id == o.Helen.id
    assert any("stage" in n.title for n in notes(o.Fred))
    assert {e["id"] for e in events(o.Fred)} == {pay.id}
    done(o.Fred, pay)
    assert statuses(run)["install"] == "waiting"  # the other branch is still open
    done(o.Helen, call)
    assert statuses(run)["install"] == "open" and install.assignee_id == o.Sam.id
    assert run.status == "running"
    done(o.Sam, install)
    assert (run.status, run.done_at) == ("done", NOW + timedelta(hours=3))
    assert "finished" in notes(o.Helen)[-1].title
    assert actions("run", run.id) == ["run.start", "run.done"]
    assert actions("task", install.id) == ["stage.open", "task.done"]
    refused(ValidationError, tasks.start_run, o.Helen, {"programme_id": p.id, "link": "project:99999999"})


def test_a_stage_is_not_given_away_nor_cancelled_alone(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller))
    run = tasks.start_run(o.Helen, {"programme_id": p.id})
    refused(Conflict, tasks.update_task, o.Helen, run.stages[0].id, {"assignee": f"user:{o.Sara.id}"})
    refused(Conflict, tasks.set_status, o.Helen, run.stages[0].id, {"action": "cancel"})


def test_a_checklist_is_required_before_a_stage_closes(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller, checklist=["Print", "Sign"]))
    run = tasks.start_run(o.Helen, {"programme_id": p.id})
    first = run.stages[0]
    assert [(s.title, s.parallel, s.required) for s in first.steps] == [
        ("Print", True, True), ("Sign", True, True)]
    check(o.Sam, first, 2)  # checklist items go in any order
    refused(Conflict, done, o.Sam, first)
    check(o.Sam, first, 1)
    done(o.Sam, first)
    assert run.status == "done"


def test_a_stage_that_needs_an_attachment_closes_only_with_one(office, admin):
    o = office
    p = programme(o.Helen, stage("Sign the act", o.seller, needs_attachment=True),
                  stage("Invoice", o.cashier))
    run = tasks.start_run(o.Helen, {"programme_id": p.id})
    first = run.stages[0]
    err = refused(Conflict, done, o.Sam, first)
    assert "attached" in err.message
    refused(NotFound, attachments.store, o.Fred, "task", first.id, upload())
    att = attachments.store(o.Sam, "task", first.id, upload())
    assert (att.owner_type, att.owner_id, att.filename) == ("task", first.id, "act.pdf")
    done(o.Sam, first)
    assert statuses(run) == {"s1": "done", "s2": "open"}


def test_cancelling_a_run_ends_its_open_and_waiting_stages(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller), stage("Invoice", o.cashier),
                  stage("Install", o.seller))
    run = tasks.start_run(o.Helen, {"programme_id": p.id})
    done(o.Sam, run.stages[0])
    refused(PermissionDenied, tasks.cancel_run, o.Fred, run.id)  # he has a stage, did not start it
    refused(NotFound, tasks.cancel_run, o.Sara, run.id)
    refused(NotFound, tasks.cancel_run, o.Helen, 99999999)
    tasks.cancel_run(o.Helen, run.id)
    assert (run.status, run.done_at) == ("cancelled", NOW)
    assert statuses(run) == {"s1": "done", "s2": "cancelled", "s3": "cancelled"}
    assert events(o.Fred)[-1]["status"] == "cancelled"
    assert tasks.my_day(o.Fred).undated == []
    assert actions("run", run.id) == ["run.start", "run.cancel"]
    refused(Conflict, tasks.cancel_run, o.Helen, run.id)
    refused(Conflict, tasks.set_status, o.Sam, run.stages[0].id, {"action": "reopen"})


def test_a_stage_is_reopened_only_while_the_next_has_not_begun(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller), stage("Invoice", o.cashier))
    run = tasks.start_run(o.Helen, {"programme_id": p.id})
    first, second = run.stages
    done(o.Sam, first)
    err = refused(Conflict, tasks.set_status, o.Sam, first.id, {"action": "reopen"})
    assert "begun" in err.message
    done(o.Fred, second)
    assert run.status == "done"
    # the last stage reopened: the run is running again until it is done once more
    tasks.set_status(o.Fred, second.id, {"action": "reopen"})
    assert (second.status, run.status, run.done_at) == ("open", "running", None)
    assert run.id in ids(db.session.scalars(tasks.runs(o.Helen, "running")))
    done(o.Fred, second)
    assert run.status == "done"


def test_runs_are_seen_by_those_who_take_part(office):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller), stage("Invoice", o.cashier))
    run = tasks.start_run(o.Helen, {"programme_id": p.id})
    for who in (o.Helen, o.Sam, o.Dora):
        assert tasks.get_run(who, run.id).id == run.id
        assert run.id in ids(db.session.scalars(tasks.runs(who)))
    refused(NotFound, tasks.get_run, o.Fred, run.id)  # his stage has not opened yet
    assert run.id not in ids(db.session.scalars(tasks.runs(o.Fred)))
    done(o.Sam, run.stages[0])
    assert tasks.get_run(o.Fred, run.id).id == run.id


def test_only_people_on_posts_start_programmes(office, make_user):
    o = office
    p = programme(o.Helen, stage("Sign", o.seller))
    outsider = make_user("Otto")
    refused(PermissionDenied, tasks.start_run, outsider, {"programme_id": p.id})
    run = tasks.start_run(o.Sam, {"programme_id": p.id})  # anyone on a post may start one
    assert run.stages[0].assignee_id == o.Sam.id


# --- posts changing hands -----------------------------------------------------------------

def test_open_work_follows_a_post_to_its_new_holder(office, admin, make_user):
    o = office
    gina = make_user("Gina")
    head_work = new_task(o.Dora, "Budget", assignee=f"post:{o.fhead.id}")
    till = new_task(o.Dora, "Count the till", assignee=f"post:{o.cashier.id}")  # from above
    closed = new_task(o.Dora, "Old budget", assignee=f"post:{o.fhead.id}")
    tasks.set_status(o.Fred, closed.id, {"action": "done"})
    personal = new_task(o.Dora, "Fred's own", assignee=f"user:{o.Fred.id}")
    assert {head_work.assignee_id, till.assignee_id, personal.assignee_id} == {o.Fred.id}
    db.session.commit()
    hand_over(admin, o.fhead, o.Fred, gina)
    db.session.expire_all()
    assert db.session.get(Task, head_work.id).assignee_id == gina.id
    assert db.session.get(Task, till.id).assignee_id == gina.id  # the post she now holds from above
    assert db.session.get(Task, closed.id).assignee_id == o.Fred.id  # done work stays his
    assert db.session.get(Task, personal.id).assignee_id == o.Fred.id  # given to him, not the post
    assert ids(tasks.my_day(gina).undated) == {head_work.id, till.id}
    assert "task.follow_post" in actions("task", head_work.id)
    assert {e["id"] for e in events(gina)} >= {head_work.id, till.id}
    assert head_work.id in {e["id"] for e in events(o.Fred)}  # he sees it leave


def test_a_request_waiting_for_a_head_who_leaves_goes_to_the_new_head(office, admin, make_user):
    o = office
    gina = make_user("Gina")
    pay = new_task(o.Sam, "Pay the bill", assignee=f"post:{o.cashier.id}")
    cover = new_task(o.Sam, "Cover my calls", assignee=f"user:{o.Sara.id}")  # Helen decides
    assert (pay.requested_of_id, pay.assignee_id) == (o.Fred.id, o.Fred.id)
    db.session.commit()
    hand_over(admin, o.fhead, o.Fred, gina)
    assert (pay.status, pay.requested_of_id, pay.assignee_id) == ("requested", gina.id, gina.id)
    assert cover.requested_of_id == o.Helen.id
    assert [n.url for n in notes(gina)] == [f"/tasks/{pay.id}"] and "Sam" in notes(gina)[0].title
    assert ids(tasks.my_day(gina).requests) == {pay.id}
    assert tasks.my_day(o.Fred).requests == []
    refused(NotFound, tasks.decide, o.Fred, pay.id, {"accept": True})
    tasks.decide(gina, pay.id, {"accept": True})
    assert (pay.status, pay.assignee_id) == ("open", gina.id)
    # a head leaving with nobody after them: the head above decides, from above
    helens = db.session.scalar(select(Assignment).where(Assignment.user_id == o.Helen.id))
    org.end_assignment(admin, helens.id)
    assert cover.requested_of_id == o.Dora.id
    tasks.decide(o.Dora, cover.id, {"accept": True})
    assert (cover.status, cover.assignee_id) == ("open", o.Sara.id)


def test_open_work_of_someone_who_leaves_all_posts_goes_to_the_posts_other_holder(office, admin):
    o = office
    post_work = new_task(o.Helen, "Call Acme", assignee=f"post:{o.seller.id}")
    named = new_task(o.Helen, "Call Beta", assignee=f"user:{o.Sam.id}")
    assert post_work.assignee_id == o.Sam.id
    org.leave_all_posts(o.Sam, admin)
    assert (post_work.assignee_id, named.assignee_id) == (o.Sara.id, o.Sam.id)
    assert actions("task", post_work.id)[-1] == "task.follow_post"


def test_work_of_a_vacant_post_moves_when_someone_takes_it(office, admin, make_user):
    o = office
    carl = make_user("Carl")
    till = new_task(o.Dora, "Count the till", assignee=f"post:{o.cashier.id}")
    p = programme(o.Dora, stage("Invoice", o.cashier))
    run = tasks.start_run(o.Dora, {"programme_id": p.id})
    fhead_work = new_task(o.Dora, "Budget", assignee=f"post:{o.fhead.id}")
    org.assign(admin, {"post_id": o.cashier.id, "user_id": carl.id})
    assert (till.assignee_id, run.stages[0].assignee_id) == (carl.id, carl.id)
    assert fhead_work.assignee_id == o.Fred.id
    assert tasks.get_task(carl, till.id).id == till.id


# --- who sees what ------------------------------------------------------------------------

def test_my_day_sorts_ones_own_open_work_by_due_time(office):
    o = office
    late = new_task(o.Helen, "Late", assignee=f"user:{o.Sam.id}",
                    due_at=(NOW - timedelta(hours=1)).isoformat())
    today = new_task(o.Helen, "Today", assignee=f"user:{o.Sam.id}",
                     due_at=(NOW + timedelta(hours=3)).isoformat())
    later = new_task(o.Helen, "Later", assignee=f"user:{o.Sam.id}",
                     due_at=(NOW + timedelta(days=3)).isoformat())
    undated = new_task(o.Sam, "Someday")
    finished = new_task(o.Sam, "Finished")
    tasks.set_status(o.Sam, finished.id, {"action": "done"})
    new_task(o.Helen, "Sara's", assignee=f"user:{o.Sara.id}", due_at=NOW.isoformat())
    day = tasks.my_day(o.Sam)
    assert ([t.id for t in day.overdue], [t.id for t in day.today], [t.id for t in day.upcoming],
            [t.id for t in day.undated]) == ([late.id], [today.id], [later.id], [undated.id])
    assert tasks.due_counts([o.Sam.id]) == {o.Sam.id: 1}


def test_the_board_shows_a_managers_scope_and_nothing_more(office):
    o = office
    sams = new_task(o.Helen, "Sam's", assignee=f"user:{o.Sam.id}")
    saras = new_task(o.Helen, "Sara's", assignee=f"user:{o.Sara.id}")
    tasks.set_status(o.Sara, saras.id, {"action": "start"})
    freds = new_task(o.Fred, "Fred's")
    helens = new_task(o.Helen, "Helen's")
    board = tasks.board(o.Helen)
    assert ids(board["open"]["tasks"]) == {sams.id, helens.id} and board["open"]["total"] == 2
    assert ids(board["in_progress"]["tasks"]) == {saras.id}
    assert freds.id not in {t.id for col in board.values() for t in col["tasks"]}
    assert ids(tasks.board(o.Helen, o.Sam.id)["open"]["tasks"]) == {sams.id}
    refused(NotFound, tasks.board, o.Helen, o.Fred.id)
    refused(NotFound, tasks.board, o.Sam, o.Sara.id)  # a peer is not one's team
    assert ids(tasks.board(o.Sam)["open"]["tasks"]) == {sams.id}
    assert freds.id in ids(tasks.board(o.Dora)["open"]["tasks"])
    assert [u.id for u in tasks.team_of(o.Helen)][0] == o.Helen.id
    assert {u.id for u in tasks.team_of(o.Helen)} == {o.Helen.id, o.Sam.id, o.Sara.id}


def test_search_finds_only_what_the_actor_may_see(office, make_user):
    o = office
    sams = new_task(o.Helen, "Call Acme", assignee=f"user:{o.Sam.id}", priority="high")
    saras = new_task(o.Helen, "Call Beta", assignee=f"user:{o.Sara.id}")
    freds = new_task(o.Fred, "Call the bank")
    pct = new_task(o.Sam, "Raise 100% of_it")
    outsider = make_user("Otto")

    def found(actor, **filters):
        return ids(db.session.scalars(tasks.search(actor, filters)))

    assert found(o.Sam, q="call") == {sams.id}
    assert found(o.Helen, q="CALL") == {sams.id, saras.id}
    assert found(o.Dora, q="call") == {sams.id, saras.id, freds.id}
    assert found(o.Fred) == {freds.id}
    assert found(outsider) == set()
    assert found(o.Helen, priority="high") == {sams.id}
    assert found(o.Helen, assignee_id=o.Sara.id) == {saras.id}
    assert found(o.Helen, q="100%") == {pct.id} and found(o.Helen, q="f_i") == {pct.id}
    assert found(o.Helen, q="%") == {pct.id}
    refused(ValidationError, tasks.search, o.Helen, {"priority": "soon"})
    refused(ValidationError, tasks.search, o.Helen, {"assignee_id": "Sam"})


def test_a_stranger_gets_not_found_for_everything_about_a_task(office, make_user):
    o = office
    task = new_task(o.Helen, assignee=f"user:{o.Sam.id}")
    outsider = make_user("Otto")
    for who in (o.Fred, outsider):
        refused(NotFound, tasks.get_task, who, task.id)
        refused(NotFound, tasks.comments_of, who, task.id)
        refused(NotFound, tasks.history, who, task.id)
        refused(NotFound, tasks.watch, who, task.id, True)
        refused(NotFound, tasks.add_comment, who, task.id, {"body": "Hi"})
        refused(NotFound, tasks.reminders_of, who, task.id)
        refused(NotFound, attachments.list_for, who, "task", task.id)
    assert tasks.resolve_task_link(o.Fred, task.id) is None
    assert tasks.resolve_task_link(o.Helen, task.id)[0] == "Call Acme"
    assert tasks.get_task(o.Dora, task.id).id == task.id  # the director sees all


# --- links --------------------------------------------------------------------------------

def test_a_task_links_to_a_message_only_its_creator_can_read(office):
    o = office
    msg = mail.send(o.Sam, {"to": [f"user:{o.Helen.id}"], "subject": "Acme wants a call",
                            "body": "Please"})
    task = new_task(o.Helen, assignee=f"user:{o.Sam.id}", link=f"message:{msg.id}")
    assert (task.link_kind, task.link_id) == ("message", msg.id)
    link = tasks.link_of(o.Helen, task)
    assert (link.kind, link.title) == ("message", "Acme wants a call")
    err = refused(ValidationError, new_task, o.Fred, link=f"message:{msg.id}")
    assert "link" in err.fields
    refused(ValidationError, tasks.update_task, o.Helen, task.id, {"link": "message:99999999"})
    refused(ValidationError, new_task, o.Helen, link="client:1")  # no such record
    tasks.update_task(o.Helen, task.id, {"link": None})
    assert (task.link_kind, task.link_id) == (None, None)
    assert tasks.link_of(o.Helen, task) is None


def test_a_task_links_to_a_project(office):
    o = office
    project = tasks.create_project(o.Fred, {"name": " Move office "})
    assert project.name == "Move office" and project.id in ids(tasks.projects())
    task = new_task(o.Sam, link=f"project:{project.id}")
    assert tasks.link_of(o.Sam, task).title == "Move office"
    assert ids(db.session.scalars(tasks.search(o.Sam, {"link": f"project:{project.id}"}))) == {task.id}
    refused(ValidationError, tasks.create_project, o.Fred, {"name": "  "})
    refused(ValidationError, new_task, o.Sam, link="project:99999999")


# --- comments and watchers ----------------------------------------------------------------

def test_a_comment_goes_live_to_everyone_taking_part(office):
    o = office
    task = stepped(o.Helen, {"title": "Price it", "assignee_id": o.Fred.id},
                   assignee=f"user:{o.Sam.id}", watchers=[o.Dora.id])
    before = told(o.Helen, o.Sam, o.Dora, o.Fred, o.Sara)
    comment = tasks.add_comment(o.Sam, task.id, {"body": " Called them, **no answer** "})
    assert (comment.body, comment.author_id) == ("Called them, **no answer**", o.Sam.id)
    assert "<strong>no answer</strong>" in comment.body_html
    for who in (o.Helen, o.Sam, o.Dora, o.Fred):
        [live] = events(who, "task.comment")
        assert (live["task_id"], live["id"], live["author"]) == (task.id, comment.id, "Sam")
        assert "<strong>" in live["html"]
    assert events(o.Sara, "task.comment") == []
    after = told(o.Helen, o.Sam, o.Dora, o.Fred, o.Sara)
    assert {k: after[k] - before[k] for k in after} == {
        "Helen": 1, "Sam": 0, "Dora": 1, "Fred": 1, "Sara": 0}
    assert notes(o.Helen)[-1].kind == "task_comment"
    # Sara is Sam's peer, not above him: the task is not hers to see
    refused(NotFound, tasks.add_comment, o.Sara, task.id, {"body": "Hi"})
    refused(ValidationError, tasks.add_comment, o.Helen, task.id, {"body": "   "})
    refused(ValidationError, tasks.add_comment, o.Helen, task.id, {})
    assert [c.id for c in tasks.comments_of(o.Fred, task.id)] == [comment.id]
    assert "task.comment" in actions("task", task.id)


def test_watchers_get_every_change(office):
    o = office
    task = new_task(o.Helen, assignee=f"user:{o.Sam.id}", watchers=[o.Fred.id])
    assert tasks.get_task(o.Fred, task.id).id == task.id  # a watcher sees it
    tasks.update_task(o.Sam, task.id, {"priority": "urgent"})
    tasks.set_status(o.Sam, task.id, {"action": "start"})
    assert [(e["id"], e["priority"], e["status"]) for e in events(o.Fred)] == [
        (task.id, "normal", "open"), (task.id, "urgent", "open"), (task.id, "urgent", "in_progress")]
    # Sara starts watching on her own: she must first be able to see it
    refused(NotFound, tasks.watch, o.Sara, task.id, True)
    tasks.watch(o.Dora, task.id, True)
    tasks.update_task(o.Helen, task.id, {"watchers": [o.Dora.id]})
    tasks.update_task(o.Helen, task.id, {"title": "Call Acme now"})
    assert events(o.Fred)[-1]["title"] == "Call Acme"  # told once as he stops watching
    assert events(o.Dora)[-1]["title"] == "Call Acme now"
    refused(NotFound, tasks.get_task, o.Fred, task.id)
    tasks.watch(o.Dora, task.id, False)
    assert [w.user_id for w in task.watchers] == []
