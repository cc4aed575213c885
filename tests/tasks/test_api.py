"""JSON API of tasks and programmes: every endpoint's outcome (rows changed, what comes back),
credentials (token, session with CSRF), other people's ids, bad input that changes nothing,
repeated calls, and the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from app.core import clock
from app.core.models import ApiToken, Attachment, AuditEvent, FeedEvent, Notification
from app.extensions import db
from app.orgchart import services as org
from app.tasks import services
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
from app.tasks.schemas import TEXT_MAX, TITLE_MAX
from tests.conftest import PASSWORD

API = "/api/v1"
BIG = 2**31  # one beyond the database's integers


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def error_of(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


MODELS = (Task, Step, Watcher, Comment, Reminder, Project, Programme, ProgrammeVersion,
          StageTemplate, Run, Attachment, AuditEvent, FeedEvent, Notification)


def row_counts() -> dict[str, int]:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in MODELS}


@pytest.fixture
def tok(office, token_for):
    """Bearer headers by first name."""
    return {name: bearer(token_for(getattr(office, name)))
            for name in ("Dora", "Helen", "Sam", "Sara", "Fred")}


def later(**kw) -> str:
    return (clock.utcnow() + timedelta(**kw)).isoformat()


def in_query(**kw) -> str:
    """A time for a query string ("+" is a space there)."""
    return quote(later(**kw))


def ok(resp, status: int = 200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def new_task(client, headers, status=201, **kw):
    return ok(client.post(f"{API}/tasks", headers=headers, json={"title": "Call Acme", **kw}),
              status)


def task_row(task_id: int) -> Task:
    return db.session.get(Task, task_id)


def actions_of(task_id: int) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.entity_type == "task", AuditEvent.entity_id == str(task_id))
        .order_by(AuditEvent.id)))


def stages(*posts, **first) -> list[dict]:
    out = [{"key": f"s{i}", "title": f"Stage {i}", "post_id": p.id, "duration_hours": 8}
           for i, p in enumerate(posts, start=1)]
    out[0].update(first)
    return out


def new_programme(client, headers, posts, status=201, **kw):
    body = {"theme": "new client", "name": "Onboarding", "stages": stages(*posts), **kw}
    return ok(client.post(f"{API}/programmes", headers=headers, json=body), status)


# --- tasks --------------------------------------------------------------------------------

def test_create_read_list_and_update_a_task(client, office, tok):
    o = office
    project = ok(client.post(f"{API}/projects", headers=tok["Helen"],
                             json={"name": "New office"}), 201)
    due = later(days=2)
    task = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}", priority="high",
                    description="Ask for the *contract*", due_at=due, start_at=later(hours=1),
                    watchers=[o.Dora.id], link=f"project:{project['id']}",
                    steps=[{"title": "Prepare"}, {"title": "Call", "assignee_id": o.Sara.id}])
    tid = task["id"]
    assert (task["status"], task["priority"], task["editable"]) == ("open", "high", True)
    assert task["creator"] == {"id": o.Helen.id, "name": "Helen"}
    assert task["assignee"] == {"id": o.Sam.id, "name": "Sam"}
    assert task["description_html"] == "<p>Ask for the <em>contract</em></p>\n"
    assert [(s["position"], s["title"], s["done"]) for s in task["steps"]] == [
        (1, "Prepare", False), (2, "Call", False)]
    assert task["steps"][1]["assignee"] == {"id": o.Sara.id, "name": "Sara"}
    assert task["watchers"] == [{"id": o.Dora.id, "name": "Dora"}]
    assert task["link"] == f"project:{project['id']}"
    assert task["linked"]["title"] == "New office" and task["linked"]["kind"] == "project"
    assert task["attachments"] == [] and task["overdue"] is False
    row = task_row(tid)
    assert (row.assignee_id, row.creator_id, row.status) == (o.Sam.id, o.Helen.id, "open")
    assert [s.title for s in row.steps] == ["Prepare", "Call"]
    assert [w.user_id for w in row.watchers] == [o.Dora.id]
    assert actions_of(tid) == ["task.create"]
    assert db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == o.Sam.id, Notification.kind == "task")) == 1

    # the person doing it reads it; the list shows it; someone in another unit does not see it
    assert ok(client.get(f"{API}/tasks/{tid}", headers=tok["Sam"]))["editable"] is True
    listed = ok(client.get(f"{API}/tasks", headers=tok["Sam"]))
    assert listed["meta"] == {"page": 1, "per_page": 25, "total": 1, "pages": 1}
    assert [t["id"] for t in listed["items"]] == [tid]
    assert ok(client.get(f"{API}/tasks", headers=tok["Fred"]))["meta"]["total"] == 0
    # Sara has a step in it, so she sees it, but may not change it
    assert ok(client.get(f"{API}/tasks/{tid}", headers=tok["Sara"]))["editable"] is False

    resp = ok(client.patch(f"{API}/tasks/{tid}", headers=tok["Sam"],
                           json={"title": "Call Acme today", "priority": "urgent",
                                 "watchers": [], "due_at": later(days=1)}))
    assert (resp["title"], resp["priority"], resp["watchers"]) == ("Call Acme today", "urgent", [])
    row = task_row(tid)
    assert (row.title, row.priority, row.watchers) == ("Call Acme today", "urgent", [])
    assert resp["description"] == "Ask for the *contract*"  # left out: kept
    assert actions_of(tid) == ["task.create", "task.update"]


def test_list_filters_and_pages(client, office, tok):
    o = office
    h = tok["Helen"]
    first = new_task(client, h, title="Invoice Acme", assignee=f"user:{o.Sam.id}",
                     due_at=later(hours=-2))
    second = new_task(client, h, title="Visit Globex", assignee=f"user:{o.Sara.id}",
                      priority="urgent", due_at=later(days=3))
    project = ok(client.post(f"{API}/projects", headers=h, json={"name": "Week"}), 201)
    third = new_task(client, h, title="Plan the week", link=f"project:{project['id']}")
    ok(client.post(f"{API}/tasks/{third['id']}/status", headers=h, json={"action": "start"}))

    def ids(query: str) -> list[int]:
        return [t["id"] for t in ok(client.get(f"{API}/tasks{query}", headers=h))["items"]]

    assert ids("") == [third["id"], second["id"], first["id"]]  # newest first
    assert ids("?q=acme") == [first["id"]]
    assert ids("?q=GLOBEX") == [second["id"]]
    assert ids("?status=in_progress") == [third["id"]]
    assert ids("?status=open,in_progress") == [third["id"], second["id"], first["id"]]
    assert ids(f"?assignee_id={o.Sara.id}") == [second["id"]]
    assert ids("?priority=urgent") == [second["id"]]
    assert ids(f"?link=project:{project['id']}") == [third["id"]]
    assert ids("?link=project:x") == []
    assert ids("?overdue=true") == [first["id"]]
    assert ids(f"?due_to={in_query(days=1)}") == [first["id"]]
    assert ids(f"?due_from={in_query(days=1)}&due_to={in_query(days=4)}") == [second["id"]]
    overdue = ok(client.get(f"{API}/tasks?overdue=true", headers=h))["items"][0]
    assert overdue["overdue"] is True
    page = ok(client.get(f"{API}/tasks?per_page=2&page=2", headers=h))
    assert page["meta"] == {"page": 2, "per_page": 2, "total": 3, "pages": 2}
    assert [t["id"] for t in page["items"]] == [first["id"]]
    # Sam sees only his own
    assert [t["id"] for t in ok(client.get(f"{API}/tasks", headers=tok["Sam"]))["items"]] == [
        first["id"]]
    for query, field in (("?status=finished", "status"), ("?priority=huge", "priority"),
                         (f"?assignee_id={BIG}", "assignee_id"), ("?assignee_id=x", "assignee_id"),
                         ("?page=0", "page"), ("?per_page=500", "per_page"),
                         ("?due_from=soon", "due_from"), ("?q=" + "x" * 201, "q"),
                         ("?overdue=maybe", "overdue"), ("?link=" + "x" * 41, "link")):
        err = error_of(client.get(f"{API}/tasks{query}", headers=h), 422, "validation_error")
        assert field in err["fields"], (query, err)


def test_status_actions_and_repeats(client, office, tok):
    o = office
    tid = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}",
                   steps=[{"title": "Prepare"}, {"title": "Call"}])["id"]
    sam = tok["Sam"]

    def status(action, headers=sam, code=200):
        resp = client.post(f"{API}/tasks/{tid}/status", headers=headers, json={"action": action})
        return ok(resp, code) if code < 400 else resp

    assert status("start")["status"] == "in_progress"
    before = row_counts()
    error_of(status("start", code=409), 409, "conflict")  # the same change twice
    err = error_of(status("done", code=409), 409, "conflict")
    assert "Prepare" in err["message"]  # required steps are open
    assert row_counts() == before and task_row(tid).status == "in_progress"

    steps = ok(client.get(f"{API}/tasks/{tid}/steps", headers=sam))
    for step in steps:
        ok(client.patch(f"{API}/tasks/{tid}/steps/{step['id']}", headers=sam, json={"done": True}))
    done = status("done")
    assert done["status"] == "done" and done["done_at"]
    assert task_row(tid).done_by_id == o.Sam.id
    before = row_counts()
    error_of(status("done", code=409), 409, "conflict")
    assert row_counts() == before
    assert status("reopen")["status"] == "open"
    error_of(status("reopen", code=409), 409, "conflict")

    # only the setter cancels
    error_of(status("cancel", code=403), 403, "permission_denied")
    assert status("cancel", headers=tok["Helen"])["status"] == "cancelled"
    before = row_counts()
    error_of(status("cancel", headers=tok["Helen"], code=409), 409, "conflict")
    # a closed task keeps its fields
    error_of(client.patch(f"{API}/tasks/{tid}", headers=tok["Helen"], json={"title": "New"}),
             409, "conflict")
    assert row_counts() == before and task_row(tid).status == "cancelled"
    assert actions_of(tid) == ["task.create", "task.start", "task.step", "task.step", "task.done",
                               "task.reopen", "task.cancel"]
    err = error_of(client.post(f"{API}/tasks/{tid}/status", headers=sam, json={"action": "close"}),
                   422, "validation_error")
    assert "action" in err["fields"]


def test_a_request_to_another_unit_is_accepted_or_declined_once(client, office, tok):
    o = office
    asked = new_task(client, tok["Sam"], title="Pay the bill", assignee=f"post:{o.cashier.id}")
    assert (asked["status"], asked["requested_of_id"]) == ("requested", o.Fred.id)
    assert asked["requested_of"] == {"id": o.Fred.id, "name": "Fred"}
    day = ok(client.get(f"{API}/tasks/my-day", headers=tok["Fred"]))
    assert [t["id"] for t in day["requests"]] == [asked["id"]]

    decision = f"{API}/tasks/{asked['id']}/decision"
    before = row_counts()
    # the director sees it but was not asked; Helen does not even see it
    error_of(client.post(decision, headers=tok["Dora"], json={"accept": True}), 403,
             "permission_denied")
    error_of(client.post(decision, headers=tok["Helen"], json={"accept": True}), 404, "not_found")
    err = error_of(client.post(decision, headers=tok["Fred"], json={"accept": False}),
                   422, "validation_error")
    assert "reason" in err["fields"]
    err = error_of(client.post(decision, headers=tok["Fred"],
                               json={"accept": True, "assignee_id": o.Sam.id}),
                   422, "validation_error")
    assert "assignee_id" in err["fields"]  # not below Fred
    error_of(client.post(decision, headers=tok["Fred"], json={"accept": "maybe"}),
             422, "validation_error")
    assert row_counts() == before

    declined = ok(client.post(decision, headers=tok["Fred"],
                              json={"accept": False, "reason": "No budget this month"}))
    assert (declined["status"], declined["decline_reason"]) == ("declined", "No budget this month")
    before = row_counts()
    error_of(client.post(decision, headers=tok["Fred"], json={"accept": True}), 409, "conflict")
    assert row_counts() == before and task_row(asked["id"]).status == "declined"

    again = new_task(client, tok["Sam"], title="Pay it", assignee=f"post:{o.cashier.id}")
    accepted = ok(client.post(f"{API}/tasks/{again['id']}/decision", headers=tok["Fred"],
                              json={"accept": True}))
    assert (accepted["status"], accepted["assignee"]["id"]) == ("open", o.Fred.id)
    assert actions_of(again["id"]) == ["task.create", "task.accept"]


def test_only_the_setter_or_the_one_doing_it_edits(client, office, tok):
    o = office
    tid = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}", watchers=[o.Sara.id],
                   steps=[{"title": "Prepare"}])["id"]
    step_id = task_row(tid).steps[0].id
    before = row_counts()
    for name in ("Dora", "Sara"):  # the director sees everything; Sara watches
        headers = tok[name]
        assert ok(client.get(f"{API}/tasks/{tid}", headers=headers))["editable"] is False
        error_of(client.patch(f"{API}/tasks/{tid}", headers=headers, json={"title": "Mine"}),
                 403, "permission_denied")
        error_of(client.post(f"{API}/tasks/{tid}/status", headers=headers,
                             json={"action": "start"}), 403, "permission_denied")
        error_of(client.post(f"{API}/tasks/{tid}/steps", headers=headers, json={"title": "x"}),
                 403, "permission_denied")
        error_of(client.patch(f"{API}/tasks/{tid}/steps/{step_id}", headers=headers,
                              json={"done": True}), 403, "permission_denied")
        error_of(client.delete(f"{API}/tasks/{tid}/steps/{step_id}", headers=headers),
                 403, "permission_denied")
    assert row_counts() == before and task_row(tid).title == "Call Acme"
    # but anyone who sees it may comment
    ok(client.post(f"{API}/tasks/{tid}/comments", headers=tok["Sara"], json={"body": "On it"}), 201)


def test_work_outside_ones_scope_is_a_request_never_an_assignment(client, office, tok):
    o = office
    task = new_task(client, tok["Sam"], title="Check the invoice", assignee=f"post:{o.cashier.id}")
    assert (task["status"], task["requested_of_id"]) == ("requested", o.Fred.id)
    assert task["assignee"]["id"] == o.Fred.id  # who would do it once accepted
    assert task_row(task["id"]).opened_at is None
    # a seller reassigning his own task to Sara (not below him): a request to Helen
    own = new_task(client, tok["Sam"], title="Mine")
    moved = ok(client.patch(f"{API}/tasks/{own['id']}", headers=tok["Sam"],
                            json={"assignee": f"user:{o.Sara.id}"}))
    assert (moved["status"], moved["requested_of_id"]) == ("requested", o.Helen.id)


# --- steps --------------------------------------------------------------------------------

def test_steps_added_checked_in_order_changed_and_removed(client, office, tok):
    o = office
    tid = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}",
                   steps=[{"title": "Prepare"}, {"title": "Call"}])["id"]
    url = f"{API}/tasks/{tid}/steps"
    added = ok(client.post(url, headers=tok["Sam"],
                           json={"title": "Report", "assignee_id": o.Sara.id, "parallel": True,
                                 "due_at": later(days=1)}), 201)
    assert (added["position"], added["parallel"], added["required"]) == (3, True, True)
    assert added["assignee"] == {"id": o.Sara.id, "name": "Sara"}
    listed = ok(client.get(url, headers=tok["Sam"]))
    assert [s["title"] for s in listed] == ["Prepare", "Call", "Report"]
    prepare, call, report = (s["id"] for s in listed)

    before = row_counts()
    err = error_of(client.patch(f"{url}/{call}", headers=tok["Sam"], json={"done": True}),
                   409, "conflict")
    assert "Prepare" in err["message"]  # out of order
    assert row_counts() == before and db.session.get(Step, call).done_at is None
    # a parallel step may go first, and its own assignee may check it
    checked = ok(client.patch(f"{url}/{report}", headers=tok["Sara"], json={"done": True}))
    assert checked["done"] is True and checked["done_by_id"] == o.Sara.id
    assert task_row(tid).status == "in_progress"  # the first check starts the work
    # checking it again changes nothing
    before = row_counts()
    assert ok(client.patch(f"{url}/{report}", headers=tok["Sara"], json={"done": True}))["done"]
    assert row_counts() == before
    # Sara may check her step but not rename it
    error_of(client.patch(f"{url}/{report}", headers=tok["Sara"], json={"title": "x"}),
             403, "permission_denied")

    ok(client.patch(f"{url}/{prepare}", headers=tok["Sam"], json={"done": True}))
    renamed = ok(client.patch(f"{url}/{call}", headers=tok["Sam"],
                              json={"title": "Call the director", "required": False}))
    assert (renamed["title"], renamed["required"]) == ("Call the director", False)
    # unchecking a step whose follower is done is refused
    ok(client.patch(f"{url}/{call}", headers=tok["Sam"], json={"done": True}))
    error_of(client.patch(f"{url}/{prepare}", headers=tok["Sam"], json={"done": False}),
             409, "conflict")

    assert client.delete(f"{url}/{call}", headers=tok["Sam"]).status_code == 204
    assert [(s.position, s.title) for s in task_row(tid).steps] == [(1, "Prepare"), (2, "Report")]
    error_of(client.delete(f"{url}/{call}", headers=tok["Sam"]), 404, "not_found")
    error_of(client.patch(f"{url}/{BIG}", headers=tok["Sam"], json={"done": True}),
             404, "not_found")
    # a step of another task is not a step of this one
    other = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}", steps=[{"title": "A"}])
    error_of(client.patch(f"{url}/{other['steps'][0]['id']}", headers=tok["Sam"],
                          json={"done": True}), 404, "not_found")


# --- comments, reminders, history ---------------------------------------------------------

def test_comments_reach_everyone_on_the_task(client, office, tok):
    o = office
    tid = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}", watchers=[o.Dora.id])["id"]
    comment = ok(client.post(f"{API}/tasks/{tid}/comments", headers=tok["Sam"],
                             json={"body": "Called, <b>no</b> answer"}), 201)
    assert comment["author"] == {"id": o.Sam.id, "name": "Sam"} and comment["task_id"] == tid
    assert "<b>" not in comment["body_html"] and comment["body"] == "Called, <b>no</b> answer"
    assert db.session.get(Comment, comment["id"]).author_id == o.Sam.id
    # live to the setter, the assignee and the watcher; nobody else
    told = set(db.session.scalars(select(FeedEvent.user_id).where(
        FeedEvent.kind == "task.comment")))
    assert told == {o.Helen.id, o.Sam.id, o.Dora.id}
    assert ok(client.get(f"{API}/tasks/{tid}/comments", headers=tok["Dora"])) == [comment]
    error_of(client.get(f"{API}/tasks/{tid}/comments", headers=tok["Fred"]), 404, "not_found")


def test_reminders_are_ones_own(client, office, tok):
    o = office
    tid = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}")["id"]
    url = f"{API}/tasks/{tid}/reminders"
    before = row_counts()
    err = error_of(client.post(url, headers=tok["Sam"], json={"remind_at": later(minutes=-1)}),
                   422, "validation_error")
    assert "remind_at" in err["fields"]
    assert row_counts() == before
    mine = ok(client.post(url, headers=tok["Sam"], json={"remind_at": later(hours=2),
                                                         "note": "Before lunch"}), 201)
    assert (mine["note"], mine["sent_at"]) == ("Before lunch", None)
    theirs = ok(client.post(url, headers=tok["Helen"], json={"remind_at": later(hours=3)}), 201)
    assert [r["id"] for r in ok(client.get(url, headers=tok["Sam"]))] == [mine["id"]]
    assert [r["id"] for r in ok(client.get(url, headers=tok["Helen"]))] == [theirs["id"]]

    before = row_counts()
    error_of(client.delete(f"{API}/task-reminders/{theirs['id']}", headers=tok["Sam"]),
             404, "not_found")
    error_of(client.delete(f"{API}/task-reminders/{BIG}", headers=tok["Sam"]), 404, "not_found")
    assert row_counts() == before
    assert client.delete(f"{API}/task-reminders/{mine['id']}", headers=tok["Sam"]).status_code == 204
    assert db.session.get(Reminder, mine["id"]) is None
    assert db.session.get(Reminder, theirs["id"]) is not None
    error_of(client.delete(f"{API}/task-reminders/{mine['id']}", headers=tok["Sam"]),
             404, "not_found")


def test_history_lists_every_change_oldest_first(client, office, tok):
    o = office
    tid = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}", due_at=later(days=2))["id"]
    ok(client.patch(f"{API}/tasks/{tid}", headers=tok["Helen"], json={"priority": "urgent"}))
    ok(client.post(f"{API}/tasks/{tid}/status", headers=tok["Sam"], json={"action": "start"}))
    events = ok(client.get(f"{API}/tasks/{tid}/history", headers=tok["Sam"]))
    assert [e["action"] for e in events] == ["task.create", "task.update", "task.start"]
    assert events[0]["actor"] == {"id": o.Helen.id, "name": "Helen"}
    assert events[1]["before"]["priority"] == "normal" and events[1]["after"]["priority"] == "urgent"
    assert events[2]["after"] == {"status": "in_progress"}
    assert "address" not in events[0]
    error_of(client.get(f"{API}/tasks/{tid}/history", headers=tok["Fred"]), 404, "not_found")


# --- my day and the board -----------------------------------------------------------------

def test_my_day_sorts_ones_work(client, office, tok):
    o = office
    h = tok["Helen"]
    now = clock.utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    clock.freeze(now)
    overdue = new_task(client, h, title="Late", assignee=f"user:{o.Sam.id}",
                       due_at=(now - timedelta(hours=3)).isoformat())
    today = new_task(client, h, title="Today", assignee=f"user:{o.Sam.id}",
                     due_at=(now + timedelta(hours=3)).isoformat())
    upcoming = new_task(client, h, title="Soon", assignee=f"user:{o.Sam.id}",
                        due_at=(now + timedelta(days=3)).isoformat())
    undated = new_task(client, h, title="Some day", assignee=f"user:{o.Sam.id}")
    helper = new_task(client, h, title="Helens", steps=[{"title": "Sam's part",
                                                         "assignee_id": o.Sam.id}])
    new_task(client, h, title="Not Sam's", assignee=f"user:{o.Sara.id}")
    day = ok(client.get(f"{API}/tasks/my-day", headers=tok["Sam"]))
    assert [[t["id"] for t in day[k]] for k in ("overdue", "today", "upcoming", "undated")] == [
        [overdue["id"]], [today["id"]], [upcoming["id"]], [undated["id"]]]
    assert day["requests"] == [] and day["overdue"][0]["overdue"] is True
    assert [(s["title"], s["task"]["id"]) for s in day["steps"]] == [("Sam's part", helper["id"])]


def test_board_of_a_managers_scope(client, office, tok):
    o = office
    h = tok["Helen"]
    a = new_task(client, h, title="A", assignee=f"user:{o.Sam.id}")
    b = new_task(client, h, title="B", assignee=f"user:{o.Sara.id}")
    ok(client.post(f"{API}/tasks/{b['id']}/status", headers=tok["Sara"], json={"action": "start"}))
    c = new_task(client, h, title="C", assignee=f"user:{o.Sam.id}")
    ok(client.post(f"{API}/tasks/{c['id']}/status", headers=tok["Sam"], json={"action": "done"}))
    new_task(client, tok["Fred"], title="Finance's own")

    board = ok(client.get(f"{API}/tasks/board", headers=h))
    assert [col["status"] for col in board["columns"]] == ["requested", "open", "in_progress", "done"]
    shown = {col["status"]: ([t["id"] for t in col["tasks"]], col["total"])
             for col in board["columns"]}
    assert shown == {"requested": ([], 0), "open": ([a["id"]], 1),
                     "in_progress": ([b["id"]], 1), "done": ([c["id"]], 1)}
    assert {p["id"] for p in board["team"]} == {o.Helen.id, o.Sam.id, o.Sara.id}
    sams = ok(client.get(f"{API}/tasks/board?person_id={o.Sam.id}", headers=h))
    assert sams["person_id"] == o.Sam.id
    assert {t["id"] for col in sams["columns"] for t in col["tasks"]} == {a["id"], c["id"]}
    # someone outside her team, an id no row can have, not a number
    error_of(client.get(f"{API}/tasks/board?person_id={o.Fred.id}", headers=h), 404, "not_found")
    for query in (f"?person_id={BIG}", "?person_id=x", "?person_id=0"):
        err = error_of(client.get(f"{API}/tasks/board{query}", headers=h), 422, "validation_error")
        assert "person_id" in err["fields"]
    # a seller's board is his own work
    own = ok(client.get(f"{API}/tasks/board", headers=tok["Sam"]))
    assert {t["id"] for col in own["columns"] for t in col["tasks"]} == {a["id"], c["id"]}


# --- programmes ---------------------------------------------------------------------------

def test_programmes_are_written_by_heads_and_versioned(client, office, tok):
    o = office
    before = row_counts()
    error_of(client.post(f"{API}/programmes", headers=tok["Sam"], json={
        "theme": "x", "name": "Mine", "stages": stages(o.seller)}), 403, "permission_denied")
    assert row_counts() == before

    created = new_programme(client, tok["Helen"], [o.seller, o.cashier], description="How")
    pid = created["id"]
    assert (created["version"], created["stage_count"], created["archived_at"]) == (1, 2, None)
    assert [(s["key"], s["post"], s["after"]) for s in created["stages"]] == [
        ("s1", {"id": o.seller.id, "title": "Seller"}, []),
        ("s2", {"id": o.cashier.id, "title": "Cashier"}, ["s1"])]
    assert [v["number"] for v in created["versions"]] == [1]
    assert db.session.scalar(select(func.count()).select_from(StageTemplate)) == 2

    # everyone reads them
    listed = ok(client.get(f"{API}/programmes", headers=tok["Sam"]))
    assert [(p["id"], p["version"]) for p in listed] == [(pid, 1)]
    assert ok(client.get(f"{API}/programmes/{pid}", headers=tok["Fred"]))["name"] == "Onboarding"

    # a run started now keeps version 1
    run = ok(client.post(f"{API}/programme-runs", headers=tok["Helen"],
                         json={"programme_id": pid}), 201)
    body = {"theme": "new client", "name": "Onboarding", "stages": stages(o.seller, o.cashier)}
    same = ok(client.put(f"{API}/programmes/{pid}", headers=tok["Helen"], json=body))
    assert same["version"] == 1  # stages unchanged: no new version
    body["stages"].append({"key": "s3", "title": "Thank them", "post_id": o.head.id})
    body["name"] = "Onboarding v2"
    changed = ok(client.put(f"{API}/programmes/{pid}", headers=tok["Helen"], json=body))
    assert (changed["version"], changed["stage_count"], changed["name"]) == (2, 3, "Onboarding v2")
    assert [(v["number"], v["stage_count"]) for v in changed["versions"]] == [(1, 2), (2, 3)]
    assert ok(client.get(f"{API}/programme-runs/{run['id']}", headers=tok["Helen"]))[
        "version"] == 1
    assert len(db.session.get(Run, run["id"]).stages) == 2
    error_of(client.put(f"{API}/programmes/{pid}", headers=tok["Sam"], json=body),
             403, "permission_denied")

    # archived: out of the list, no new runs, no edits; archiving twice changes nothing more
    assert client.delete(f"{API}/programmes/{pid}", headers=tok["Helen"]).status_code == 204
    assert db.session.get(Programme, pid).archived_at is not None
    assert ok(client.get(f"{API}/programmes", headers=tok["Sam"])) == []
    assert [p["id"] for p in ok(client.get(f"{API}/programmes?archived=true",
                                           headers=tok["Sam"]))] == [pid]
    before = row_counts()
    assert client.delete(f"{API}/programmes/{pid}", headers=tok["Helen"]).status_code == 204
    error_of(client.post(f"{API}/programme-runs", headers=tok["Helen"],
                         json={"programme_id": pid}), 409, "conflict")
    error_of(client.put(f"{API}/programmes/{pid}", headers=tok["Helen"], json=body),
             409, "conflict")
    error_of(client.delete(f"{API}/programmes/{pid}", headers=tok["Sam"]), 403,
             "permission_denied")
    assert row_counts() == before
    error_of(client.get(f"{API}/programmes/{BIG}", headers=tok["Sam"]), 404, "not_found")
    error_of(client.get(f"{API}/programmes/999999", headers=tok["Sam"]), 404, "not_found")


def test_bad_programmes_are_refused_and_change_nothing(client, office, tok, admin):
    o = office
    h = tok["Helen"]
    lone = org.create_unit(admin, {"name": "Lab", "kind": "company"})
    nobody = org.create_post(admin, {"unit_id": lone.id, "title": "Researcher"})
    db.session.commit()
    before = row_counts()
    cycle = [{"key": "a", "title": "A", "post_id": o.seller.id, "after": ["b"]},
             {"key": "b", "title": "B", "post_id": o.seller.id, "after": ["a"]}]
    for body, field in (
            ({"theme": "x", "name": "Loop", "stages": cycle}, "stages"),
            ({"theme": "x", "name": "Empty", "stages": []}, "stages"),
            ({"theme": "x", "name": "None"}, "stages"),
            ({"theme": "x", "name": "Ghost", "stages": [{"title": "A", "post_id": BIG}]}, "stages"),
            ({"theme": "x", "name": "Ghost", "stages": [{"title": "A", "post_id": 999999}]},
             "stages"),
            ({"theme": "x", "name": "Twice", "stages": [
                {"key": "a", "title": "A", "post_id": o.seller.id},
                {"key": "a", "title": "B", "post_id": o.seller.id}]}, "stages"),
            ({"theme": "x", "name": "Lost", "stages": [
                {"title": "A", "post_id": o.seller.id, "after": ["zzz"]}]}, "stages"),
            ({"theme": "x", "name": "Long", "stages": [
                {"title": "A", "post_id": o.seller.id, "duration_hours": 0}]}, "stages"),
            ({"theme": "x" * 81, "name": "Big", "stages": stages(o.seller)}, "theme"),
            ({"theme": "x", "name": "", "stages": stages(o.seller)}, "name"),
            ({"theme": "x", "stages": stages(o.seller)}, "name"),
            ({"theme": "x", "name": "Str", "stages": "s1"}, "stages"),
    ):
        err = error_of(client.post(f"{API}/programmes", headers=h, json=body),
                       422, "validation_error")
        assert field in err["fields"], (body, err)
    assert row_counts() == before

    # a first stage on a post with no holder and nobody above it cannot start
    pid = new_programme(client, h, [nobody, o.seller])["id"]
    before = row_counts()
    err = error_of(client.post(f"{API}/programme-runs", headers=h, json={"programme_id": pid}),
                   422, "validation_error")
    assert "programme_id" in err["fields"] and "Researcher" in err["message"]
    for body, field in (({"programme_id": BIG}, "programme_id"),
                        ({"programme_id": "1"}, "programme_id"), ({}, "programme_id"),
                        ({"programme_id": pid, "link": "client:x"}, "link"),
                        ({"programme_id": pid, "title": "x" * (TITLE_MAX + 1)}, "title")):
        err = error_of(client.post(f"{API}/programme-runs", headers=h, json=body),
                       422, "validation_error")
        assert field in err["fields"], (body, err)
    error_of(client.post(f"{API}/programme-runs", headers=h, json={"programme_id": 999999}),
             404, "not_found")
    assert row_counts() == before


# --- programme runs -----------------------------------------------------------------------

def upload(client, headers, task_id, content=b"signed act", name="act.pdf"):
    b = "taskboundary7"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="owner_type"\r\n\r\ntask\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="owner_id"\r\n\r\n{task_id}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + \
        f"\r\n--{b}--\r\n".encode()
    return client.post(f"{API}/attachments", headers=headers, data=body,
                       content_type=f"multipart/form-data; boundary={b}")


@pytest.fixture
def stored_files(app):
    """Files this test stores are removed after it (its rows are rolled back)."""
    root = Path(app.config["UPLOAD_DIR"])
    before = set(root.rglob("*"))
    yield
    for path in set(root.rglob("*")) - before:
        if path.is_file():
            path.unlink()


def test_a_run_opens_stage_after_stage(client, office, tok, stored_files):
    o = office
    project = ok(client.post(f"{API}/projects", headers=tok["Helen"], json={"name": "Move"}), 201)
    pid = new_programme(client, tok["Helen"], [o.seller, o.cashier], name="Install")["id"]
    db.session.get(Programme, pid).current.stages[0].needs_attachment = True
    db.session.commit()
    start = clock.utcnow().replace(microsecond=0)
    clock.freeze(start)
    run = ok(client.post(f"{API}/programme-runs", headers=tok["Helen"],
                         json={"programme_id": pid, "link": f"project:{project['id']}"}), 201)
    assert (run["status"], run["version"], run["title"]) == ("running", 1, "Install: Move")
    assert run["programme"]["id"] == pid and run["started_by"]["id"] == o.Helen.id
    assert run["linked"]["title"] == "Move" and run["link"] == f"project:{project['id']}"
    first, second = run["stages"]
    assert (first["status"], second["status"]) == ("open", "waiting")
    assert first["post"] == {"id": o.seller.id, "title": "Seller"}
    assert first["assignee"]["id"] in (o.Sam.id, o.Sara.id) and second["assignee"] is None
    assert second["planned_start_at"] == first["planned_due_at"]
    assert second["opened_at"] is None and first["opened_at"] is not None
    assert db.session.scalar(select(func.count()).select_from(Task).where(
        Task.run_id == run["id"])) == 2
    doer = tok["Sam"] if first["assignee"]["id"] == o.Sam.id else tok["Sara"]

    # the stage needs its signed act before it closes
    clock.advance(timedelta(hours=3))
    before = row_counts()
    err = error_of(client.post(f"{API}/tasks/{first['id']}/status", headers=doer,
                               json={"action": "done"}), 409, "conflict")
    assert "attached" in err["message"]
    assert row_counts() == before
    assert upload(client, doer, first["id"]).status_code == 201
    assert ok(client.post(f"{API}/tasks/{first['id']}/status", headers=doer,
                          json={"action": "done"}))["status"] == "done"

    shown = ok(client.get(f"{API}/programme-runs/{run['id']}", headers=tok["Helen"]))
    first, second = shown["stages"]
    assert first["status"] == "done" and first["done_at"].startswith(
        (start + timedelta(hours=3)).isoformat()[:19])
    assert second["status"] == "open" and second["assignee"]["id"] == o.Fred.id  # from above
    assert shown["stages_done"] == 1 and shown["stages_total"] == 2
    # Fred now has a stage in it, so he sees the run
    assert ok(client.get(f"{API}/programme-runs", headers=tok["Fred"]))["meta"]["total"] == 1
    assert ok(client.get(f"{API}/programme-runs?status=done", headers=tok["Helen"]))["items"] == []
    # a stage is not reassigned nor cancelled on its own
    error_of(client.patch(f"{API}/tasks/{second['id']}", headers=tok["Fred"],
                          json={"assignee": f"user:{o.Fred.id}"}), 409, "conflict")

    before = row_counts()
    error_of(client.post(f"{API}/programme-runs/{run['id']}/cancel", headers=tok["Fred"]),
             403, "permission_denied")
    assert row_counts() == before
    cancelled = ok(client.post(f"{API}/programme-runs/{run['id']}/cancel", headers=tok["Helen"]))
    assert cancelled["status"] == "cancelled"
    assert [s["status"] for s in cancelled["stages"]] == ["done", "cancelled"]
    before = row_counts()
    error_of(client.post(f"{API}/programme-runs/{run['id']}/cancel", headers=tok["Helen"]),
             409, "conflict")
    assert row_counts() == before


def test_runs_list_and_ones_not_seen(client, office, tok):
    o = office
    pid = new_programme(client, tok["Helen"], [o.seller])["id"]
    ids = [ok(client.post(f"{API}/programme-runs", headers=tok["Helen"],
                          json={"programme_id": pid, "title": f"Run {i}"}), 201)["id"]
           for i in range(3)]
    page = ok(client.get(f"{API}/programme-runs?per_page=2", headers=tok["Helen"]))
    assert page["meta"] == {"page": 1, "per_page": 2, "total": 3, "pages": 2}
    assert [r["id"] for r in page["items"]] == [ids[2], ids[1]]
    assert page["items"][0]["title"] == "Run 2" and page["items"][0]["stages_total"] == 1
    assert ok(client.get(f"{API}/programme-runs", headers=tok["Fred"]))["meta"]["total"] == 0
    before = row_counts()
    error_of(client.get(f"{API}/programme-runs/{ids[0]}", headers=tok["Fred"]), 404, "not_found")
    error_of(client.post(f"{API}/programme-runs/{ids[0]}/cancel", headers=tok["Fred"]),
             404, "not_found")
    error_of(client.get(f"{API}/programme-runs/{BIG}", headers=tok["Helen"]), 404, "not_found")
    err = error_of(client.get(f"{API}/programme-runs?status=paused", headers=tok["Helen"]),
                   422, "validation_error")
    assert "status" in err["fields"]
    assert row_counts() == before


# --- projects -----------------------------------------------------------------------------

def test_projects(client, office, tok):
    before = row_counts()
    for body, field in (({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 201}, "name"),
                        ({"name": 5}, "name"), ({"name": "x", "description": "y" * (TEXT_MAX + 1)},
                                                "description")):
        err = error_of(client.post(f"{API}/projects", headers=tok["Sam"], json=body),
                       422, "validation_error")
        assert field in err["fields"], body
    err = error_of(client.post(f"{API}/projects", headers=tok["Sam"], json={"name": "   "}),
                   422, "validation_error")
    assert "name" in err["fields"]
    assert row_counts() == before
    made = ok(client.post(f"{API}/projects", headers=tok["Sam"],
                          json={"name": "Warehouse", "description": "Shelves"}), 201)
    assert made["owner"] == {"id": office.Sam.id, "name": "Sam"}
    assert db.session.get(Project, made["id"]).name == "Warehouse"
    ok(client.post(f"{API}/projects", headers=tok["Sam"], json={"name": "Archive"}), 201)
    assert [p["name"] for p in ok(client.get(f"{API}/projects", headers=tok["Fred"]))] == [
        "Archive", "Warehouse"]


# --- credentials, other people's ids, bad input -------------------------------------------

ROUTES = (("get", "/tasks"), ("post", "/tasks"), ("get", "/tasks/1"), ("patch", "/tasks/1"),
          ("post", "/tasks/1/status"), ("post", "/tasks/1/decision"), ("get", "/tasks/1/steps"),
          ("post", "/tasks/1/steps"), ("patch", "/tasks/1/steps/1"),
          ("delete", "/tasks/1/steps/1"), ("get", "/tasks/1/comments"),
          ("post", "/tasks/1/comments"), ("get", "/tasks/1/reminders"),
          ("post", "/tasks/1/reminders"), ("delete", "/task-reminders/1"),
          ("get", "/tasks/1/history"), ("get", "/tasks/my-day"), ("get", "/tasks/board"),
          ("get", "/programmes"), ("post", "/programmes"), ("get", "/programmes/1"),
          ("put", "/programmes/1"), ("delete", "/programmes/1"), ("get", "/programme-runs"),
          ("post", "/programme-runs"), ("get", "/programme-runs/1"),
          ("post", "/programme-runs/1/cancel"), ("get", "/projects"), ("post", "/projects"))


def test_without_a_live_token_every_endpoint_is_401(client, office, token_for):
    plain = token_for(office.Sam)
    assert client.get(f"{API}/tasks", headers=bearer(plain)).status_code == 200
    token_id = db.session.scalar(select(ApiToken.id).where(ApiToken.user_id == office.Sam.id))
    assert client.delete(f"{API}/tokens/{token_id}", headers=bearer(plain)).status_code == 200
    before = row_counts()
    for method, path in ROUTES:
        for headers in ({}, bearer("crm_wrong"), bearer(plain), {"Authorization": "Basic x"}):
            error_of(getattr(client, method)(f"{API}{path}", json={"title": "x"}, headers=headers),
                     401, "unauthorized")
    assert row_counts() == before


def test_session_calls_need_the_csrf_token(app, office):
    o = office
    browser = app.test_client()
    assert browser.sign_in(o.Sam.email, PASSWORD).status_code == 302
    assert browser.get(f"{API}/tasks").status_code == 200
    assert browser.get(f"{API}/tasks/my-day").status_code == 200
    tid = services.create_task(o.Sam, {"title": "Mine"}).id
    db.session.commit()
    before = row_counts()
    for method, path, body in (("post", "/tasks", {"title": "x"}),
                               ("patch", f"/tasks/{tid}", {"title": "x"}),
                               ("post", f"/tasks/{tid}/status", {"action": "start"}),
                               ("post", f"/tasks/{tid}/comments", {"body": "x"}),
                               ("post", "/projects", {"name": "x"})):
        err = error_of(getattr(browser, method)(f"{API}{path}", json=body), 400, "csrf_failed")
        assert err["message"]
    assert row_counts() == before and task_row(tid).title == "Mine"
    made = ok(browser.post(f"{API}/tasks", json={"title": "From the page"},
                           headers={"X-CSRFToken": browser.csrf()}), 201)
    assert made["creator"]["id"] == o.Sam.id and task_row(made["id"]).title == "From the page"
    # signed out: refused
    browser.form("/logout")
    error_of(browser.get(f"{API}/tasks"), 401, "unauthorized")


def test_another_persons_task_is_404_and_unchanged(client, office, tok):
    o = office
    task = new_task(client, tok["Helen"], assignee=f"user:{o.Sam.id}", steps=[{"title": "A"}])
    tid, sid = task["id"], task["steps"][0]["id"]
    reminder = ok(client.post(f"{API}/tasks/{tid}/reminders", headers=tok["Sam"],
                              json={"remind_at": later(hours=1)}), 201)
    fred = tok["Fred"]
    before = row_counts()
    for method, path, body in (
            ("get", f"/tasks/{tid}", None), ("patch", f"/tasks/{tid}", {"title": "Mine"}),
            ("post", f"/tasks/{tid}/status", {"action": "start"}),
            ("post", f"/tasks/{tid}/decision", {"accept": True}),
            ("get", f"/tasks/{tid}/steps", None), ("post", f"/tasks/{tid}/steps", {"title": "x"}),
            ("patch", f"/tasks/{tid}/steps/{sid}", {"done": True}),
            ("delete", f"/tasks/{tid}/steps/{sid}", None),
            ("get", f"/tasks/{tid}/comments", None),
            ("post", f"/tasks/{tid}/comments", {"body": "x"}),
            ("get", f"/tasks/{tid}/reminders", None),
            ("post", f"/tasks/{tid}/reminders", {"remind_at": later(hours=1)}),
            ("get", f"/tasks/{tid}/history", None),
            ("delete", f"/task-reminders/{reminder['id']}", None),
            ("get", "/tasks/999999", None), ("get", f"/tasks/{BIG}", None),
            ("patch", f"/tasks/{BIG}", {"title": "x"}),
            ("post", f"/tasks/{BIG}/status", {"action": "start"}),
            ("patch", f"/tasks/{tid}/steps/{BIG}", {"done": True}),
    ):
        kwargs = {"headers": fred} if body is None else {"headers": fred, "json": body}
        err = error_of(getattr(client, method)(f"{API}{path}", **kwargs), 404, "not_found")
        assert "Call Acme" not in err["message"]
    assert row_counts() == before
    assert task_row(tid).title == "Call Acme" and task_row(tid).status == "open"
    # nor does a filter on it show anything
    assert ok(client.get(f"{API}/tasks?assignee_id={o.Sam.id}", headers=fred))["items"] == []


def test_bad_input_is_422_with_fields_and_changes_nothing(client, office, tok):
    o = office
    h = tok["Helen"]
    tid = new_task(client, h, assignee=f"user:{o.Sam.id}", steps=[{"title": "A"}])["id"]
    sid = task_row(tid).steps[0].id
    before = row_counts()
    for body, field in (
            ({}, "title"),
            ({"title": ""}, "title"),
            ({"title": "   "}, "title"),
            ({"title": "x" * (TITLE_MAX + 1)}, "title"),
            ({"title": 5}, "title"),
            ({"title": "x", "description": "y" * (TEXT_MAX + 1)}, "description"),
            ({"title": "x", "assignee": "user:999999"}, "assignee"),
            ({"title": "x", "assignee": f"user:{BIG}"}, "assignee"),
            ({"title": "x", "assignee": "post:999999"}, "assignee"),
            ({"title": "x", "assignee": "unit:1"}, "assignee"),
            ({"title": "x", "assignee": "x" * 41}, "assignee"),
            ({"title": "x", "watchers": [BIG]}, "watchers"),
            ({"title": "x", "watchers": [999999]}, "watchers"),
            ({"title": "x", "watchers": "1"}, "watchers"),
            ({"title": "x", "watchers": ["1"]}, "watchers"),
            ({"title": "x", "start_at": later(days=2), "due_at": later(days=1)}, "due_at"),
            ({"title": "x", "due_at": "tomorrow"}, "due_at"),
            ({"title": "x", "priority": "asap"}, "priority"),
            ({"title": "x", "link": "message:999999"}, "link"),
            ({"title": "x", "link": "planet:1"}, "link"),
            ({"title": "x", "steps": [{"title": ""}]}, "steps"),
            ({"title": "x", "steps": [{"title": "a", "assignee_id": BIG}]}, "steps"),
            ({"title": "x", "steps": [{"title": "a", "assignee_id": 999999}]}, "steps"),
            ({"title": "x", "steps": [{"title": "a"}] * 101}, "steps"),
            ({"title": "x", "steps": {"title": "a"}}, "steps"),
    ):
        err = error_of(client.post(f"{API}/tasks", headers=h, json=body), 422, "validation_error")
        assert field in err["fields"], (body, err)
    err = error_of(client.post(f"{API}/tasks", headers=h, data="{not json",
                               content_type="application/json"), 400, "bad_request")
    assert "json" in err["fields"]
    error_of(client.post(f"{API}/tasks", headers=h, json=[1, 2]), 422, "validation_error")

    for path, body, field in (
            (f"/tasks/{tid}", {"title": ""}, "title"),
            (f"/tasks/{tid}", {"title": "  "}, "title"),
            (f"/tasks/{tid}", {"due_at": later(days=1), "start_at": later(days=2)}, "due_at"),
            (f"/tasks/{tid}", {"assignee": "user:999999"}, "assignee"),
            (f"/tasks/{tid}", {"priority": 3}, "priority"),
            (f"/tasks/{tid}/steps/{sid}", {"done": "yes please"}, "done"),
            (f"/tasks/{tid}/steps/{sid}", {"assignee_id": BIG}, "assignee_id"),
            (f"/tasks/{tid}/steps/{sid}", {"assignee_id": 999999}, "assignee_id"),
            (f"/tasks/{tid}/steps/{sid}", {"title": "  "}, "title"),
            (f"/tasks/{tid}/steps/{sid}", {"title": "x" * (TITLE_MAX + 1)}, "title"),
    ):
        err = error_of(client.patch(f"{API}{path}", headers=h, json=body), 422, "validation_error")
        assert field in err["fields"], (path, body, err)
    for path, body, field in (
            (f"/tasks/{tid}/steps", {}, "title"),
            (f"/tasks/{tid}/steps", {"title": "x", "parallel": "maybe"}, "parallel"),
            (f"/tasks/{tid}/comments", {}, "body"),
            (f"/tasks/{tid}/comments", {"body": "   "}, "body"),
            (f"/tasks/{tid}/comments", {"body": "x" * (TEXT_MAX + 1)}, "body"),
            (f"/tasks/{tid}/reminders", {}, "remind_at"),
            (f"/tasks/{tid}/reminders", {"remind_at": "noon"}, "remind_at"),
            (f"/tasks/{tid}/reminders", {"remind_at": later(hours=1), "note": "n" * 301}, "note"),
            (f"/tasks/{tid}/status", {}, "action"),
            (f"/tasks/{tid}/decision", {}, "accept"),
    ):
        err = error_of(client.post(f"{API}{path}", headers=h, json=body), 422, "validation_error")
        assert field in err["fields"], (path, body, err)
    assert row_counts() == before
    row = task_row(tid)
    assert (row.title, row.priority, row.steps[0].title) == ("Call Acme", "normal", "A")


def test_openapi_document_has_every_tasks_route(app, client, office, tok):
    doc = ok(client.get(f"{API}/openapi.json", headers=tok["Sam"]))
    paths = doc["paths"]
    prefixes = ("/api/v1/tasks", "/api/v1/task-reminders", "/api/v1/programmes",
                "/api/v1/programme-runs", "/api/v1/projects")
    seen = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefixes):
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<int:{arg}>", f"{{{arg}}}")
        assert path in paths, path
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        assert methods <= set(paths[path]), (path, methods, set(paths[path]))
        seen += 1
    assert seen >= 16
    for path, methods in (
            ("/api/v1/tasks", {"get", "post"}), ("/api/v1/tasks/{task_id}", {"get", "patch"}),
            ("/api/v1/tasks/{task_id}/status", {"post"}),
            ("/api/v1/tasks/{task_id}/decision", {"post"}),
            ("/api/v1/tasks/{task_id}/steps", {"get", "post"}),
            ("/api/v1/tasks/{task_id}/steps/{step_id}", {"patch", "delete"}),
            ("/api/v1/tasks/{task_id}/comments", {"get", "post"}),
            ("/api/v1/tasks/{task_id}/reminders", {"get", "post"}),
            ("/api/v1/task-reminders/{reminder_id}", {"delete"}),
            ("/api/v1/tasks/{task_id}/history", {"get"}), ("/api/v1/tasks/my-day", {"get"}),
            ("/api/v1/tasks/board", {"get"}), ("/api/v1/programmes", {"get", "post"}),
            ("/api/v1/programmes/{programme_id}", {"get", "put", "delete"}),
            ("/api/v1/programme-runs", {"get", "post"}),
            ("/api/v1/programme-runs/{run_id}", {"get"}),
            ("/api/v1/programme-runs/{run_id}/cancel", {"post"}),
            ("/api/v1/projects", {"get", "post"})):
        assert methods <= set(paths[path]), path
    create = paths["/api/v1/tasks"]["post"]
    assert {"201", "422"} <= set(create["responses"])
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TaskIn")
    params = {p["name"] for p in paths["/api/v1/tasks"]["get"]["parameters"]}
    assert {"q", "status", "assignee_id", "overdue", "page", "per_page"} <= params
    schemas = doc["components"]["schemas"]
    assert {"steps", "watchers", "linked", "attachments"} <= set(schemas["TaskDetail"]["properties"])
    assert {"stages", "versions"} <= set(schemas["ProgrammeDetail"]["properties"])
    assert {"planned_start_at", "planned_due_at", "opened_at", "done_at"} <= set(
        schemas["RunStage"]["properties"])


def test_lists_take_the_same_queries_for_more_rows(client, office, tok, count_queries):
    o = office
    h = tok["Helen"]
    pid = new_programme(client, h, [o.seller, o.cashier])["id"]

    def grow(n: int) -> int:
        last = 0
        for i in range(n):
            last = new_task(client, h, title=f"T{i}", assignee=f"user:{o.Sam.id}",
                            watchers=[o.Dora.id, o.Sara.id], due_at=later(days=i - 1),
                            steps=[{"title": "a", "assignee_id": o.Sara.id}, {"title": "b"}])["id"]
            ok(client.post(f"{API}/tasks/{last}/comments", headers=h, json={"body": "x"}), 201)
            ok(client.post(f"{API}/programme-runs", headers=h, json={"programme_id": pid}), 201)
        return last

    def queries(path: str, headers=h) -> int:
        with count_queries() as statements:
            ok(client.get(path, headers=headers))
        return len(statements)

    paths = ("/tasks", "/tasks/board", "/programme-runs", "/programmes")
    ok(client.get(f"{API}/tasks/my-day", headers=tok["Sam"]))  # the token's first use is noted
    last = grow(2)
    small = [queries(f"{API}{p}") for p in paths] + [
        queries(f"{API}/tasks/my-day", tok["Sam"]), queries(f"{API}/tasks/{last}"),
        queries(f"{API}/tasks/{last}/comments")]
    last = grow(6)
    assert ok(client.get(f"{API}/tasks", headers=h))["meta"]["total"] == 8 + 2 * 8  # and stages
    big = [queries(f"{API}{p}") for p in paths] + [
        queries(f"{API}/tasks/my-day", tok["Sam"]), queries(f"{API}/tasks/{last}"),
        queries(f"{API}/tasks/{last}/comments")]
    assert big == small
