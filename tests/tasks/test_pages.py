"""The pages of tasks and programmes as the people of the `office` chart see them.

Dora directs the company; Helen heads Sales with Sam and Sara on the Seller post; Fred heads
Finance, whose Cashier post is vacant and so held from above by Fred. Each page is checked
for the rows it shows to the right person, its refusal of others (404), its forms (which
keep what was typed when refused, and say why) and the CSRF token on every form.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from app.core import clock
from app.core.models import Attachment, Notification
from app.extensions import db
from app.messaging import services as mail
from app.tasks import services as tasks
from app.tasks.models import Comment, Programme, Project, Reminder, Run, Step, Task, Watcher

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze(NOW)
    yield
    clock.release()


@pytest.fixture
def signed_in(app):
    clients = {}

    def make(person):
        if person.id not in clients:
            c = app.test_client()
            assert c.sign_in(person.email).status_code == 302
            clients[person.id] = c
        return clients[person.id]

    return make


# --- reading pages ------------------------------------------------------------------------

class _Finder(HTMLParser):
    """The inner HTML of every element carrying data-testid="<name>"."""

    def __init__(self, html: str, name: str):
        super().__init__(convert_charrefs=False)
        self.html, self.name = html, name
        self.lines = [0]
        for line in html.splitlines(keepends=True):
            self.lines.append(self.lines[-1] + len(line))
        self.found: list[str] = []
        self.open: list[tuple[str, int, int]] = []  # (tag, depth, content start)
        self.depth: dict[str, int] = {}

    def _pos(self) -> int:
        line, col = self.getpos()
        return self.lines[line - 1] + col

    def handle_starttag(self, tag, attrs):
        self.depth[tag] = self.depth.get(tag, 0) + 1
        if dict(attrs).get("data-testid") == self.name:
            text = self.get_starttag_text() or ""
            self.open.append((tag, self.depth[tag], self._pos() + len(text)))

    def handle_endtag(self, tag):
        if self.open and self.open[-1][0] == tag and self.open[-1][1] == self.depth.get(tag):
            _tag, _depth, start = self.open.pop()
            self.found.append(self.html[start:self._pos()])
        self.depth[tag] = self.depth.get(tag, 1) - 1


VOID = re.compile(r"<(input|br|img|hr|meta|link)([^>]*?)\s*/?>")


def parts(html: str, name: str) -> list[str]:
    finder = _Finder(VOID.sub(r"<\1\2 />", html), name)
    finder.feed(finder.html)
    return finder.found


def part(html: str, name: str) -> str:
    found = parts(html, name)
    assert found, f'no data-testid="{name}" on the page'
    return found[0]


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def page(client, path: str, status: int = 200, **kw) -> str:
    response = client.get(path, **kw)
    assert response.status_code == status, (path, response.status_code)
    return response.get_data(as_text=True)


def forms_have_csrf(html: str) -> None:
    """Every form posted by the browser carries the token (htmx sends it as a header)."""
    posted = re.findall(r"<form\b[^>]*method=\"post\"[^>]*>.*?</form>", html, flags=re.S | re.I)
    assert posted
    for form in posted:
        assert 'name="csrf_token"' in form, form[:300]


def flashes(html: str) -> str:
    found = re.search(r'<div id="flash-area">(.*?)</div>\s*\n', html, flags=re.S)
    return text(found.group(1)) if found else ""


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


def local(hours: float) -> str:
    """A datetime-local field's value (the office's people live in UTC)."""
    return (NOW + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def commit():
    db.session.commit()


# --- my day -------------------------------------------------------------------------------

@pytest.fixture
def day_of_sam(office):
    """Sam's work, one in each place of his day, and a step of his in Helen's own task."""
    made = {
        "late": tasks.create_task(office.Helen, {"title": "Late report", "due_at": at(-2),
                                                 "assignee": f"user:{office.Sam.id}"}),
        "today": tasks.create_task(office.Helen, {"title": "Call Acme today", "due_at": at(5),
                                                  "assignee": f"user:{office.Sam.id}"}),
        "later": tasks.create_task(office.Helen, {"title": "Plan the fair", "due_at": at(72),
                                                  "assignee": f"user:{office.Sam.id}"}),
        "undated": tasks.create_task(office.Sam, {"title": "Tidy the folder"}),
        "helens": tasks.create_task(office.Helen, {"title": "Helen's own", "steps": [
            {"title": "Sam checks the prices", "assignee_id": office.Sam.id}]}),
        "saras": tasks.create_task(office.Helen, {"title": "Sara's visit",
                                                  "assignee": f"user:{office.Sara.id}"}),
    }
    commit()
    return made


def test_my_day_shows_each_piece_of_work_in_its_place(office, signed_in, day_of_sam):
    html = page(signed_in(office.Sam), "/tasks/")
    assert "Late report" in text(part(html, "day-overdue"))
    assert "Call Acme today" in text(part(html, "day-today"))
    assert "Plan the fair" in text(part(html, "day-upcoming"))
    assert "Tidy the folder" in text(part(html, "day-undated"))
    steps = text(part(html, "day-steps"))
    assert "Sam checks the prices" in steps and "Helen's own" in steps
    assert "Sara's visit" not in html  # someone else's work
    assert "from Helen" in text(part(html, "day-overdue"))
    assert part(html, "count-overdue") == "1"
    assert part(html, "count-mine") == "4"
    forms_have_csrf(html)

    sara = text(page(signed_in(office.Sara), "/tasks/"))
    assert "Sara's visit" in sara and "Late report" not in sara


def test_my_day_list_alone_for_the_live_refresh(office, signed_in, day_of_sam):
    c = signed_in(office.Sam)
    html = page(c, "/tasks/", headers={**HX, "HX-Target": "task-day"})
    assert html.lstrip().startswith('<div id="task-day"')
    assert "<html" not in html and "Late report" in html
    assert 'id="tasks-nav"' in html and 'hx-swap-oob="true"' in html  # the counts come along
    tasks.create_task(office.Helen, {"title": "Brand new", "assignee": f"user:{office.Sam.id}"})
    commit()
    assert "Brand new" in page(c, "/tasks/", headers={**HX, "HX-Target": "task-day"})


def test_nothing_to_do_says_so(office, signed_in):
    html = page(signed_in(office.Sara), "/tasks/")
    assert "Nothing is waiting for you" in text(part(html, "day-empty"))


def test_a_request_is_accepted_or_declined_from_my_day(office, signed_in):
    asked = tasks.create_task(office.Sam, {"title": "Pay the bill",
                                           "assignee": f"post:{office.cashier.id}"})
    other = tasks.create_task(office.Sam, {"title": "Refund Acme",
                                           "assignee": f"post:{office.cashier.id}"})
    commit()
    fred = signed_in(office.Fred)
    html = page(fred, "/tasks/")
    rows = parts(html, "request-row")
    assert [("Pay the bill" in r, "Refund Acme" in r) for r in rows] == [(True, False), (False, True)]
    assert "Sam asks your unit to take this on" in text(rows[0])
    assert part(html, "count-requests") == "2"
    forms_have_csrf(html)
    assert "Pay the bill" not in page(signed_in(office.Sam), "/tasks/")  # Sam only asked

    # Declining needs a reason: refused, nothing changes.
    answer = fred.form(f"/tasks/{other.id}/decide", {"accept": "0", "reason": "  ",
                                                     "next": "/tasks/"}, follow_redirects=True)
    assert "Say why the request is declined." in flashes(answer.get_data(as_text=True))
    assert db.session.get(Task, other.id).status == "requested"
    fred.form(f"/tasks/{other.id}/decide", {"accept": "0", "reason": "Not ours to refund"})
    assert (db.session.get(Task, other.id).status,
            db.session.get(Task, other.id).decline_reason) == ("declined", "Not ours to refund")

    # Accepting gives it to someone the head directs (here Fred himself).
    fred.form(f"/tasks/{asked.id}/decide", {"accept": "1", "assignee_id": str(office.Fred.id)})
    task = db.session.get(Task, asked.id)
    assert (task.status, task.assignee_id) == ("open", office.Fred.id)
    html = page(fred, "/tasks/")
    assert "Pay the bill" in text(part(html, "day-undated")) and "request-row" not in html

    # Only the head asked decides.
    third = tasks.create_task(office.Sam, {"title": "Count the till",
                                           "assignee": f"post:{office.cashier.id}"})
    commit()
    answer = signed_in(office.Helen).form(f"/tasks/{third.id}/decide",
                                          {"accept": "1", "assignee_id": str(office.Helen.id)})
    assert answer.status_code == 404  # Helen may not even see it
    assert db.session.get(Task, third.id).status == "requested"


def test_start_and_done_from_my_day(office, signed_in, day_of_sam):
    c = signed_in(office.Sam)
    late = day_of_sam["late"]
    c.form(f"/tasks/{late.id}/status", {"action": "start", "next": "/tasks/"})
    assert db.session.get(Task, late.id).status == "in_progress"
    answer = c.form(f"/tasks/{late.id}/status", {"action": "done", "next": "/tasks/"})
    assert answer.headers["Location"] == "/tasks/"
    assert db.session.get(Task, late.id).status == "done"
    assert "Late report" not in page(c, "/tasks/")
    # A step of his in Helen's task, checked from his day.
    step = day_of_sam["helens"].steps[0]
    c.form(f"/tasks/{step.task_id}/steps/{step.id}", {"done": "1", "next": "/tasks/"})
    assert db.session.get(Step, step.id).done_at == NOW


# --- tasks I set, the board, search ----------------------------------------------------------

def test_tasks_i_set_with_their_state(office, signed_in, day_of_sam):
    c = signed_in(office.Helen)
    tasks.set_status(office.Sam, day_of_sam["today"].id, {"action": "start"})
    commit()
    html = page(c, "/tasks/set")
    titles = text(part(html, "task-rows"))
    for title in ("Late report", "Call Acme today", "Plan the fair", "Helen's own", "Sara's visit"):
        assert title in titles
    assert "Tidy the folder" not in titles  # Sam set that one
    started = text(part(page(c, "/tasks/set?state=in_progress"), "task-rows"))
    assert "Call Acme today" in started and "Late report" not in started
    assert "None of the tasks you set" in page(c, "/tasks/set?state=done")
    page(c, "/tasks/set?state=nonsense", 404)
    assert "Tidy the folder" in page(signed_in(office.Sam), "/tasks/set")


def test_tasks_i_set_paginate(office, signed_in, app):
    for n in range(app.config["PER_PAGE"] + 3):
        tasks.create_task(office.Helen, {"title": f"Chore {n:02d}"})
    commit()
    c = signed_in(office.Helen)
    first = parts(page(c, "/tasks/set"), "task-row")
    second = parts(page(c, "/tasks/set?page=2"), "task-row")
    assert (len(first), len(second)) == (app.config["PER_PAGE"], 3)


def test_the_board_shows_the_team_by_status(office, signed_in, day_of_sam):
    tasks.set_status(office.Sam, day_of_sam["today"].id, {"action": "start"})
    asked = tasks.create_task(office.Sam, {"title": "Pay the bill",
                                           "assignee": f"post:{office.cashier.id}"})
    commit()
    c = signed_in(office.Helen)
    html = page(c, "/tasks/board")
    columns = {s: text(part(html, f"board-col-{s}"))
               for s in ("requested", "open", "in_progress", "done")}
    assert "Call Acme today" in columns["in_progress"]
    assert "Late report" in columns["open"] and "Sara's visit" in columns["open"]
    assert "Tidy the folder" in columns["open"]  # Sam's own work is in Helen's scope too
    assert asked.title not in html  # Fred's unit decides on it, not Helen's
    forms_have_csrf(html)

    only_sara = text(page(c, f"/tasks/board?person={office.Sara.id}"))
    assert "Sara's visit" in only_sara and "Late report" not in only_sara
    page(c, f"/tasks/board?person={office.Fred.id}", 404)  # not in Helen's team
    page(c, "/tasks/board?person=abc", 404)

    sam = text(page(signed_in(office.Sam), "/tasks/board"))
    assert "Late report" in sam and "Sara's visit" not in sam

    fragment = page(c, "/tasks/board", headers={**HX, "HX-Target": "task-board"})
    assert fragment.lstrip().startswith('<div id="task-board"')


def test_moving_a_card_on_the_board(office, signed_in, day_of_sam):
    c = signed_in(office.Sam)
    late = day_of_sam["late"]
    c.form("/tasks/board/move", {"task_id": str(late.id), "from": "open", "to": "in_progress"})
    assert db.session.get(Task, late.id).status == "in_progress"
    answer = c.form("/tasks/board/move", {"task_id": str(late.id), "from": "in_progress",
                                          "to": "requested"}, follow_redirects=True)
    assert "A card cannot move that way." in flashes(answer.get_data(as_text=True))
    assert db.session.get(Task, late.id).status == "in_progress"
    # Dora sees Sam's card but neither set nor does it: refused, unchanged.
    answer = signed_in(office.Dora).form("/tasks/board/move", {
        "task_id": str(late.id), "from": "in_progress", "to": "done"}, follow_redirects=True)
    assert "Only the person who set this task" in flashes(answer.get_data(as_text=True))
    assert db.session.get(Task, late.id).status == "in_progress"
    assert signed_in(office.Fred).form("/tasks/board/move", {
        "task_id": str(late.id), "from": "in_progress", "to": "done"}).status_code == 404


def test_search_finds_what_one_may_see(office, signed_in, day_of_sam):
    project = tasks.create_project(office.Helen, {"name": "Fair 2026"})
    tasks.update_task(office.Helen, day_of_sam["later"].id, {"link": f"project:{project.id}",
                                                             "priority": "high"})
    commit()
    c = signed_in(office.Helen)
    found = text(part(page(c, "/tasks/search?q=acme"), "search-results"))
    assert "Call Acme today" in found and "Late report" not in found
    found = text(part(page(c, f"/tasks/search?link=project:{project.id}"), "search-results"))
    assert "Plan the fair" in found and "Call Acme" not in found
    found = text(part(page(c, "/tasks/search?priority=high"), "search-results"))
    assert "Plan the fair" in found and "Late report" not in found
    found = text(part(page(c, "/tasks/search?overdue=1"), "search-results"))
    assert "Late report" in found and "Plan the fair" not in found
    found = text(part(page(c, f"/tasks/search?assignee_id={office.Sara.id}"), "search-results"))
    assert "Sara's visit" in found and "Late report" not in found
    day = NOW.date().isoformat()
    found = text(part(page(c, f"/tasks/search?due_from={day}&due_to={day}"), "search-results"))
    assert "Call Acme today" in found and "Late report" in found and "Plan the fair" not in found
    assert "No task matches." in page(c, "/tasks/search?q=nothing-like-this")
    # What one may not see is not found.
    assert "Sara's visit" not in page(signed_in(office.Sam), "/tasks/search?q=visit")
    assert "Late report" not in page(signed_in(office.Fred), "/tasks/search?q=report")


def test_search_says_what_is_wrong_with_a_filter(office, signed_in):
    c = signed_in(office.Helen)
    html = page(c, "/tasks/search?priority=sky-high&q=acme", 422)
    assert part(html, "error-priority") and 'value="acme"' in html
    html = page(c, "/tasks/search?due_from=yesterday", 422)
    assert part(html, "error-due_from") and 'value="yesterday"' in html
    html = page(c, "/tasks/search?status=lost", 422)
    assert part(html, "error-status")


def test_search_paginates(office, signed_in, app):
    for n in range(app.config["PER_PAGE"] + 1):
        tasks.create_task(office.Helen, {"title": f"Quote {n:02d}"})
    commit()
    c = signed_in(office.Helen)
    assert len(parts(page(c, "/tasks/search?q=quote"), "task-row")) == app.config["PER_PAGE"]
    assert len(parts(page(c, "/tasks/search?q=quote&page=2"), "task-row")) == 1


# --- a task -------------------------------------------------------------------------------

@pytest.fixture
def acme(office):
    task = tasks.create_task(office.Helen, {
        "title": "Call Acme", "description": "Ask about **the invoice**.", "due_at": at(8),
        "assignee": f"user:{office.Sam.id}", "priority": "high",
        "steps": [{"title": "Prepare the figures"}, {"title": "Make the call"},
                  {"title": "Send flowers", "parallel": True, "required": False}]})
    commit()
    return task


def test_the_task_page_for_its_people(office, signed_in, acme):
    sam = page(signed_in(office.Sam), f"/tasks/{acme.id}")
    assert part(sam, "task-title") == "Call Acme"
    assert "<strong>the invoice</strong>" in part(sam, "task-description")
    facts = text(part(sam, "task-facts"))
    assert "Sam" in facts and "Helen" in facts
    assert [text(s) for s in parts(sam, "step-label")] == [
        "1. Prepare the figures", "2. Make the call", "3. Send flowers"]
    assert "parallel" in text(parts(sam, "step")[2]) and "optional" in text(parts(sam, "step")[2])
    for testid in ("task-start", "task-done", "task-edit", "add-step"):
        assert f'data-testid="{testid}"' in sam
    assert 'data-testid="task-cancel"' not in sam  # only the setter cancels
    forms_have_csrf(sam)
    assert "created the task" in text(part(sam, "history"))

    helen = page(signed_in(office.Helen), f"/tasks/{acme.id}")
    assert 'data-testid="task-cancel"' in helen
    # Dora, above them, reads it but has no buttons to change it.
    dora = page(signed_in(office.Dora), f"/tasks/{acme.id}")
    assert "Call Acme" in dora and 'data-testid="task-edit"' not in dora
    assert 'data-testid="add-step"' not in dora
    assert re.search(r'id="step-\d+" disabled', dora)
    # Sara and Fred may not see it at all.
    page(signed_in(office.Sara), f"/tasks/{acme.id}", 404)
    page(signed_in(office.Fred), f"/tasks/{acme.id}", 404)
    page(signed_in(office.Fred), f"/tasks/{acme.id}/edit", 404)
    page(signed_in(office.Fred), "/tasks/2147483648", 404)


def test_steps_are_checked_in_order_with_a_clear_error(office, signed_in, acme):
    c = signed_in(office.Sam)
    first, second, flowers = acme.steps
    answer = c.post(f"/tasks/{acme.id}/steps/{second.id}",
                    data={"done": "1", "csrf_token": c.csrf()}, headers=HX)
    assert answer.status_code == 409
    html = answer.get_data(as_text=True)
    assert "Step 1 comes first" in text(part(html, "step-error"))
    assert db.session.get(Step, second.id).done_at is None
    # A parallel step may go first; the first step checked starts the work.
    answer = c.post(f"/tasks/{acme.id}/steps/{flowers.id}",
                    data={"done": "1", "csrf_token": c.csrf()}, headers=HX)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="task-steps"')
    assert 'id="task-head"' in html and 'hx-swap-oob="true"' in html  # the status badge too
    assert "In progress" in text(part(html, "task-status"))
    assert db.session.get(Step, flowers.id).done_at == NOW
    # Done with a required step open: refused and said.
    answer = c.form(f"/tasks/{acme.id}/status", {"action": "done"}, follow_redirects=True)
    assert "Required steps are still open" in flashes(answer.get_data(as_text=True))
    assert db.session.get(Task, acme.id).status == "in_progress"
    for step in (first, second):
        c.post(f"/tasks/{acme.id}/steps/{step.id}", data={"done": "1", "csrf_token": c.csrf()},
               headers=HX)
    answer = c.form(f"/tasks/{acme.id}/status", {"action": "done"}, follow_redirects=True)
    assert "Done." in flashes(answer.get_data(as_text=True))
    assert db.session.get(Task, acme.id).status == "done"
    history = text(part(page(c, f"/tasks/{acme.id}"), "history"))
    assert "checked a step: Send flowers" in history and "marked it done" in history


def test_a_step_of_ones_own_is_checked_by_its_assignee(office, signed_in):
    task = tasks.create_task(office.Helen, {"title": "Helen's list", "steps": [
        {"title": "Sara's bit", "assignee_id": office.Sara.id}, {"title": "Helen's bit"}]})
    commit()
    sara = signed_in(office.Sara)
    html = page(sara, f"/tasks/{task.id}")
    assert 'data-testid="task-edit"' not in html
    own, other = task.steps
    assert f'id="step-{own.id}" disabled' not in html and f'id="step-{other.id}" disabled' in html
    sara.post(f"/tasks/{task.id}/steps/{own.id}", data={"done": "1", "csrf_token": sara.csrf()},
              headers=HX)
    assert db.session.get(Step, own.id).done_by_id == office.Sara.id
    answer = sara.post(f"/tasks/{task.id}/steps/{other.id}",
                       data={"done": "1", "csrf_token": sara.csrf()}, headers=HX)
    assert answer.status_code == 403
    assert "step's assignee" in text(part(answer.get_data(as_text=True), "step-error"))
    assert db.session.get(Step, other.id).done_at is None


def test_adding_a_step_keeps_what_was_typed_when_refused(office, signed_in, acme):
    c = signed_in(office.Helen)
    answer = c.form(f"/tasks/{acme.id}/steps", {"title": "", "due_at": local(3),
                                               "required": "1"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert part(html, "error-title")
    assert f'value="{local(3)}"' in html
    assert len(db.session.get(Task, acme.id).steps) == 3
    answer = c.form(f"/tasks/{acme.id}/steps", {"title": "Write the minutes", "due_at": local(3),
                                               "required": "1"})
    assert answer.status_code == 302
    step = db.session.get(Task, acme.id).steps[-1]
    assert (step.title, step.due_at, step.required, step.parallel) == (
        "Write the minutes", NOW + timedelta(hours=3), True, False)
    c.form(f"/tasks/{acme.id}/steps/{step.id}/delete")
    assert [s.title for s in db.session.get(Task, acme.id).steps] == [
        "Prepare the figures", "Make the call", "Send flowers"]


def test_comments_reach_the_page_and_the_participants(office, signed_in, acme):
    sam = signed_in(office.Sam)
    answer = sam.post(f"/tasks/{acme.id}/comments", headers=HX,
                      data={"body": "Called, *no answer*", "csrf_token": sam.csrf()})
    assert answer.status_code == 200
    listed = answer.get_data(as_text=True)
    assert listed.lstrip().startswith('<div id="task-comment-list"')
    assert "<em>no answer</em>" in listed
    told = db.session.scalars(select(Notification).where(
        Notification.user_id == office.Helen.id, Notification.kind == "task_comment")).all()
    assert len(told) == 1
    # Another viewer's page fetches the list on the live event.
    fetched = page(signed_in(office.Helen), f"/tasks/{acme.id}",
                   headers={**HX, "HX-Target": "task-comment-list"})
    assert "<em>no answer</em>" in fetched and "<html" not in fetched
    answer = sam.post(f"/tasks/{acme.id}/comments", headers=HX,
                      data={"body": "   ", "csrf_token": sam.csrf()})
    assert answer.status_code == 422
    assert part(answer.get_data(as_text=True), "comment-error")
    assert db.session.scalar(select(func.count()).select_from(Comment)) == 1


def test_follow_and_unfollow(office, signed_in, acme):
    dora = signed_in(office.Dora)
    assert "Follow" in part(page(dora, f"/tasks/{acme.id}"), "watch")
    dora.form(f"/tasks/{acme.id}/watch", {"on": "1"})
    assert db.session.get(Watcher, (acme.id, office.Dora.id)) is not None
    html = page(dora, f"/tasks/{acme.id}")
    assert "Unfollow" in part(html, "watch") and "Dora" in text(part(html, "watchers"))
    dora.form(f"/tasks/{acme.id}/watch", {"on": "0"})
    assert db.session.get(Watcher, (acme.id, office.Dora.id)) is None


def test_reminders_are_ones_own_and_in_the_future(office, signed_in, acme):
    c = signed_in(office.Sam)
    answer = c.form(f"/tasks/{acme.id}/reminders", {"remind_at": local(-1), "note": "Ring back"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "already passed" in text(part(html, "error-remind_at"))
    assert 'value="Ring back"' in html and f'value="{local(-1)}"' in html
    assert db.session.scalar(select(func.count()).select_from(Reminder)) == 0
    c.form(f"/tasks/{acme.id}/reminders", {"remind_at": local(2), "note": "Ring back"})
    reminder = db.session.scalars(select(Reminder)).one()
    assert (reminder.user_id, reminder.remind_at, reminder.note) == (
        office.Sam.id, NOW + timedelta(hours=2), "Ring back")
    assert "Ring back" in text(part(page(c, f"/tasks/{acme.id}"), "reminders"))
    assert "set a reminder" in text(part(page(c, f"/tasks/{acme.id}"), "history"))
    helens = page(signed_in(office.Helen), f"/tasks/{acme.id}")
    assert "Ring back" not in helens and "set a reminder" not in helens  # Sam's own
    assert signed_in(office.Helen).form(f"/tasks/reminders/{reminder.id}/delete").status_code == 404
    c.form(f"/tasks/reminders/{reminder.id}/delete")
    assert db.session.scalar(select(func.count()).select_from(Reminder)) == 0


def test_files_on_a_task(office, signed_in, acme):
    sam = signed_in(office.Sam)
    answer = sam.post("/attachments", headers=HX, data={
        "owner_type": "task", "owner_id": str(acme.id), "csrf_token": sam.csrf(),
        "file": (io.BytesIO(b"Minutes of the call"), "minutes.txt")},
        content_type="multipart/form-data")
    assert answer.status_code == 200
    att = db.session.scalars(select(Attachment)).one()
    html = page(signed_in(office.Dora), f"/tasks/{acme.id}")
    assert f"/attachments/{att.id}" in html and "minutes.txt" in html
    assert f"/attachments/{att.id}/delete" not in html  # Dora only reads
    assert "attached a file: minutes.txt" in text(part(html, "history"))
    assert page(signed_in(office.Dora), f"/attachments/{att.id}") == "Minutes of the call"
    page(signed_in(office.Fred), f"/attachments/{att.id}", 404)


# --- the task form --------------------------------------------------------------------------

def test_a_new_task_from_a_message(office, signed_in):
    msg = mail.send(office.Helen, {"to": [f"user:{office.Sam.id}"], "subject": "Acme wants a quote",
                                   "body": "Please"})
    commit()
    sam = signed_in(office.Sam)
    thread = page(sam, f"/mail/{msg.id}")
    href = re.search(r'href="([^"]+)" data-testid="create-task"', thread).group(1)
    assert href.startswith("/tasks/new?") and f"link=message:{msg.id}" in href
    html = page(sam, href.replace("&amp;", "&"))
    assert 'value="Acme wants a quote"' in html
    assert re.search(rf'<option value="message:{msg.id}" selected>Message: Acme wants a quote',
                     html)
    forms_have_csrf(html)
    answer = sam.form("/tasks/new", {"title": "Quote for Acme", "link": f"message:{msg.id}",
                                     "priority": "high", "due_at": local(24),
                                     "steps-0-title": "Price list", "steps-0-required": "1",
                                     "steps-1-title": "", "steps-1-required": "1",
                                     "steps-2-title": "Send it", "steps-2-required": "1",
                                     "steps-2-parallel": "1"})
    task = db.session.scalars(select(Task).where(Task.title == "Quote for Acme")).one()
    assert answer.headers["Location"] == f"/tasks/{task.id}"
    assert (task.link_kind, task.link_id, task.priority, task.assignee_id, task.due_at) == (
        "message", msg.id, "high", office.Sam.id, NOW + timedelta(hours=24))
    assert [(s.title, s.parallel) for s in task.steps] == [("Price list", False), ("Send it", True)]
    assert "Acme wants a quote" in text(part(page(sam, f"/tasks/{task.id}"), "fact-link"))
    # Someone who cannot read the message is not offered it.
    html = page(signed_in(office.Fred), f"/tasks/new?link=message:{msg.id}&title=x",
                follow_redirects=True)
    assert f'<option value="message:{msg.id}"' not in html
    assert "not there or not yours to see" in html


def test_a_refused_task_form_keeps_what_was_typed(office, signed_in):
    c = signed_in(office.Helen)
    form = {"title": "Stocktaking", "description": "Count *everything*", "priority": "urgent",
            "assignee": f"user:{office.Sam.id}", "watchers": [str(office.Dora.id)],
            "start_at": local(10), "due_at": local(5),
            "steps-0-title": "Shelves", "steps-0-required": "1", "steps-0-due_at": local(6)}
    answer = c.form("/tasks/new", form)
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "before the start" in text(part(html, "error-due_at"))
    assert part(html, "form-error")
    assert 'value="Stocktaking"' in html and "Count *everything*" in html
    assert f'value="{local(10)}"' in html and f'value="{local(5)}"' in html
    assert re.search(rf'<option value="user:{office.Sam.id}" selected>', html)
    assert re.search(rf'<option value="{office.Dora.id}" selected>', html)
    assert '<option value="urgent" selected>' in html
    assert 'value="Shelves"' in html and f'value="{local(6)}"' in html
    assert db.session.scalar(select(func.count()).select_from(Task)) == 0

    # A step row with a due time but no title says which row is wrong.
    answer = c.form("/tasks/new", {"title": "Stocktaking", "steps-0-title": "Shelves",
                                   "steps-0-required": "1", "steps-1-title": " ",
                                   "steps-1-due_at": local(6)})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "Step 2 needs a title." in text(part(html, "error-steps"))
    assert 'value="Shelves"' in html and f'value="{local(6)}"' in html
    assert db.session.scalar(select(func.count()).select_from(Task)) == 0

    answer = c.form("/tasks/new", {"title": "   "})
    assert answer.status_code == 422 and part(answer.get_data(as_text=True), "error-title")


def test_work_outside_ones_scope_becomes_a_request(office, signed_in):
    c = signed_in(office.Sam)
    html = page(c, "/tasks/new")
    assert re.search(r'<optgroup label="Other posts · as a request to their head">.*?Cashier',
                     html, flags=re.S)
    answer = c.form("/tasks/new", {"title": "Pay Acme", "assignee": f"post:{office.cashier.id}"},
                    follow_redirects=True)
    assert "Sent as a request" in flashes(answer.get_data(as_text=True))
    task = db.session.scalars(select(Task).where(Task.title == "Pay Acme")).one()
    assert (task.status, task.requested_of_id) == ("requested", office.Fred.id)


def test_editing_a_task(office, signed_in, acme):
    c = signed_in(office.Helen)
    html = page(c, f"/tasks/{acme.id}/edit")
    assert 'value="Call Acme"' in html and f'value="{local(8)}"' in html
    forms_have_csrf(html)
    answer = c.form(f"/tasks/{acme.id}/edit", {
        "title": "Call Acme back", "description": "New text", "priority": "low",
        "assignee": f"user:{office.Sam.id}", "assignee_was": f"user:{office.Sam.id}",
        "start_at": "", "due_at": local(30), "link": "", "link_was": ""})
    assert answer.status_code == 302
    task = db.session.get(Task, acme.id)
    assert (task.title, task.priority, task.due_at) == ("Call Acme back", "low",
                                                        NOW + timedelta(hours=30))
    history = part(page(c, f"/tasks/{acme.id}"), "history")
    assert "changed the task" in text(history) and "Call Acme → Call Acme back" in text(history)

    answer = c.form(f"/tasks/{acme.id}/edit", {"title": "Call Acme back", "start_at": local(40),
                                               "due_at": local(30), "priority": "low",
                                               "assignee_was": "", "link_was": ""})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert part(html, "error-due_at") and f'value="{local(40)}"' in html
    assert db.session.get(Task, acme.id).start_at is None

    # Dora may read it but not edit it; Sara may not see it.
    assert signed_in(office.Dora).get(f"/tasks/{acme.id}/edit").status_code == 403
    answer = signed_in(office.Dora).form(f"/tasks/{acme.id}/edit", {"title": "Mine now"})
    assert answer.status_code == 403 and db.session.get(Task, acme.id).title == "Call Acme back"
    page(signed_in(office.Sara), f"/tasks/{acme.id}/edit", 404)


def test_a_cancelled_task_is_not_edited(office, signed_in, acme):
    c = signed_in(office.Helen)
    c.form(f"/tasks/{acme.id}/status", {"action": "cancel"})
    assert db.session.get(Task, acme.id).status == "cancelled"
    answer = c.get(f"/tasks/{acme.id}/edit")
    assert answer.status_code == 302 and answer.headers["Location"] == f"/tasks/{acme.id}"
    html = page(c, f"/tasks/{acme.id}")
    assert 'data-testid="task-edit"' not in html and "Cancelled" in part(html, "task-status")


def test_forms_need_the_csrf_token(office, signed_in, acme):
    c = signed_in(office.Helen)
    assert c.post("/tasks/new", data={"title": "No token"}).status_code == 400
    assert c.post(f"/tasks/{acme.id}/status", data={"action": "cancel"}).status_code == 400
    assert db.session.get(Task, acme.id).status == "open"
    assert db.session.scalar(select(func.count()).select_from(Task)) == 1


# --- programmes, runs, projects ------------------------------------------------------------------

def stage_rows(*stages: dict) -> dict:
    form = {}
    for i, stage in enumerate(stages):
        for key, value in stage.items():
            form[f"stages-{i}-{key}"] = value
    return form


@pytest.fixture
def onboarding(office):
    programme = tasks.create_programme(office.Helen, {
        "theme": "new client", "name": "Onboarding", "description": "From call to payment",
        "stages": [{"key": "sign", "title": "Sign the contract", "post_id": office.seller.id,
                    "needs_attachment": True, "checklist": ["Print", "Sign"],
                    "instructions": "Both **sides** sign."},
                   {"key": "bill", "title": "Bill the client", "post_id": office.cashier.id,
                    "duration_hours": 8}]})
    commit()
    return programme


def test_programmes_by_theme_and_one_programme(office, signed_in, onboarding):
    tasks.create_programme(office.Helen, {"theme": "hiring", "name": "New seller", "stages": [
        {"title": "Interview", "post_id": office.head.id}]})
    commit()
    sam = signed_in(office.Sam)
    html = page(sam, "/tasks/programmes")
    assert [text(c).split(" Start")[0] for c in parts(html, "programme-card")] == [
        "hiring New seller 1 stage · version 1 · 24 h planned Interview",
        "new client Onboarding 2 stages · version 1 · 32 h planned Sign the contract Bill the client"]
    assert 'data-testid="new-programme"' not in html  # Sam writes no programmes
    hiring = page(sam, "/tasks/programmes?theme=hiring")
    assert "New seller" in hiring and "Onboarding" not in hiring
    assert 'data-testid="new-programme"' in page(signed_in(office.Helen), "/tasks/programmes")

    html = page(sam, f"/tasks/programmes/{onboarding.id}")
    stages = [text(s) for s in parts(html, "stage")]
    assert stages[0].startswith("1 Sign the contract sign 24 hours needs a file")
    assert "Seller · Sam, Sara" in stages[0] and "opens when the run starts" in stages[0]
    assert "<strong>sides</strong>" in html and "Print" in stages[0]
    assert "Cashier · vacant, held from above by Fred" in stages[1]
    assert "after: Sign the contract" in stages[1]
    assert 'data-testid="edit-programme"' not in html
    page(sam, "/tasks/programmes/999999", 404)
    page(sam, f"/tasks/programmes/{onboarding.id}?version=7", 404)


def test_writing_a_programme(office, signed_in):
    c = signed_in(office.Helen)
    forms_have_csrf(page(c, "/tasks/programmes/new"))
    answer = c.form("/tasks/programmes/new", {
        "theme": "installation", "name": "Install a kitchen", "start_on_deal_won": "1",
        **stage_rows({"key": "measure", "title": "Measure", "post_id": str(office.seller.id),
                      "duration_hours": "4", "checklist": "Walls\nFloor\n", "after": ""},
                     {"key": "pay", "title": "Take the prepayment",
                      "post_id": str(office.cashier.id), "needs_attachment": "1", "after": "-"},
                     {"key": "fit", "title": "Fit it", "post_id": str(office.seller.id),
                      "after": "measure, pay", "duration_hours": ""},
                     {"title": "", "post_id": "", "duration_hours": "24"})})
    programme = db.session.scalars(select(Programme)).one()
    assert answer.headers["Location"] == f"/tasks/programmes/{programme.id}"
    stages = programme.current.stages
    assert [(s.key, s.duration_hours, s.checklist, s.needs_attachment, s.after) for s in stages] == [
        ("measure", 4, ["Walls", "Floor"], False, []), ("pay", 24, [], True, []),
        ("fit", 24, [], False, ["measure", "pay"])]

    # Editing the stages makes version 2; a rename alone does not.
    assert programme.start_on_deal_won is True
    assert "Starts by itself for every deal that is won." in page(
        c, f"/tasks/programmes/{programme.id}")
    edit = page(c, f"/tasks/programmes/{programme.id}/edit")
    assert 'value="measure, pay"' in edit and "Walls\nFloor" in edit
    assert re.search(r'name="start_on_deal_won" value="1" checked', edit)
    c.form(f"/tasks/programmes/{programme.id}/edit", {
        "theme": "installation", "name": "Install a kitchen",
        **stage_rows({"key": "measure", "title": "Measure twice", "post_id": str(office.seller.id),
                      "duration_hours": "4", "after": "-"})})
    assert db.session.get(Programme, programme.id).current.number == 2
    assert db.session.get(Programme, programme.id).start_on_deal_won is False  # unticked
    html = page(c, f"/tasks/programmes/{programme.id}")
    assert [text(v)[:9] for v in parts(html, "versions")[0].split("</li>")[:2]] == [
        "Version 2", "Version 1"]
    assert "Measure twice" in html
    assert "Fit it" in page(c, f"/tasks/programmes/{programme.id}?version=1")

    c.form(f"/tasks/programmes/{programme.id}/archive")
    assert db.session.get(Programme, programme.id).archived_at == NOW
    assert "Install a kitchen" not in page(c, "/tasks/programmes")


def test_a_refused_programme_keeps_its_stages(office, signed_in):
    c = signed_in(office.Helen)
    form = {"theme": "loops", "name": "Circle",
            **stage_rows({"key": "a", "title": "First", "post_id": str(office.seller.id),
                          "after": "b", "checklist": "One\nTwo"},
                         {"key": "b", "title": "Second", "post_id": str(office.seller.id),
                          "after": "a"})}
    answer = c.form("/tasks/programmes/new", form)
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "in a circle" in text(part(html, "error-stages"))
    assert 'value="First"' in html and 'value="Second"' in html and "One\nTwo" in html
    assert 'value="b"' in html and 'value="Circle"' in html
    answer = c.form("/tasks/programmes/new", {"theme": "x", "name": "Empty"})
    assert "at least one stage" in text(part(answer.get_data(as_text=True), "error-stages"))
    answer = c.form("/tasks/programmes/new", {"theme": "x", "name": "Slow", **stage_rows(
        {"title": "Wait", "post_id": str(office.seller.id), "duration_hours": "soon"})})
    assert answer.status_code == 422 and 'value="soon"' in answer.get_data(as_text=True)
    assert "Not a valid integer." in answer.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Programme)) == 0


def test_only_designers_write_programmes(office, signed_in, onboarding):
    sam = signed_in(office.Sam)
    assert sam.get("/tasks/programmes/new").status_code == 403
    assert sam.get(f"/tasks/programmes/{onboarding.id}/edit").status_code == 403
    assert sam.form("/tasks/programmes/new", {"theme": "x", "name": "Mine", **stage_rows(
        {"title": "Go", "post_id": str(office.seller.id)})}).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Programme)) == 1


def test_starting_a_run_and_its_timeline(office, signed_in, onboarding):
    project = tasks.create_project(office.Helen, {"name": "Acme onboarding"})
    commit()
    c = signed_in(office.Helen)
    html = page(c, f"/tasks/runs/new?programme={onboarding.id}&link=project:{project.id}")
    assert re.search(rf'<option value="{onboarding.id}" selected>', html)
    assert re.search(rf'<option value="project:{project.id}" selected>', html)
    forms_have_csrf(html)
    page(c, "/tasks/runs/new?programme=999999", 404)
    answer = c.form("/tasks/runs/new", {"programme_id": str(onboarding.id), "title": "",
                                        "link": f"project:{project.id}", "start_at": local(1)})
    run = db.session.scalars(select(Run)).one()
    assert answer.headers["Location"] == f"/tasks/runs/{run.id}"
    assert run.title == "Onboarding: Acme onboarding"
    first, second = run.stages
    assert (first.status, second.status) == ("open", "waiting")
    assert first.planned_start_at == NOW + timedelta(hours=1)

    html = page(c, f"/tasks/runs/{run.id}")
    rows = parts(html, "tl-row")
    assert len(rows) == 2
    assert "Sign the contract" in text(rows[0]) and "Open" in text(rows[0])
    assert "tl-actual" in rows[0] and "tl-actual" not in rows[1]  # the second has not begun
    assert rows[0].count("tl-planned") == 1 and rows[1].count("tl-planned") == 1
    assert f'href="/tasks/{first.id}"' in html
    assert "Acme onboarding" in part(html, "run-link")
    assert 'data-testid="cancel-run"' in html

    listing = page(c, "/tasks/runs")
    assert "Onboarding: Acme onboarding" in text(part(listing, "runs"))
    assert "1 run" in text(part(page(c, "/tasks/projects"), "projects"))

    # Sam does the first stage, so he sees the run; Fred's stage has not opened yet.
    sam = page(signed_in(office.Sam), f"/tasks/runs/{run.id}")
    assert 'data-testid="cancel-run"' not in sam
    page(signed_in(office.Fred), f"/tasks/runs/{run.id}", 404)
    assert "Acme onboarding" not in page(signed_in(office.Fred), "/tasks/runs")
    assert signed_in(office.Sam).form(f"/tasks/runs/{run.id}/cancel").status_code == 302
    assert db.session.get(Run, run.id).status == "running"

    c.form(f"/tasks/runs/{run.id}/cancel")
    assert db.session.get(Run, run.id).status == "cancelled"
    assert "Cancelled" in part(page(c, f"/tasks/runs/{run.id}"), "run-status")


def test_a_stage_closes_only_with_its_file_and_opens_the_next(office, signed_in, onboarding):
    run = tasks.start_run(office.Helen, {"programme_id": onboarding.id})
    commit()
    first, second = run.stages
    sam = signed_in(office.Sam)
    html = page(sam, f"/tasks/{first.id}")
    assert "closes only with a file" in text(part(html, "needs-attachment"))
    assert [text(s) for s in parts(html, "step-label")] == ["1. Print", "2. Sign"]
    for step in first.steps:  # a checklist: its items in any order
        sam.post(f"/tasks/{first.id}/steps/{step.id}", data={"done": "1",
                                                             "csrf_token": sam.csrf()}, headers=HX)
    answer = sam.form(f"/tasks/{first.id}/status", {"action": "done"}, follow_redirects=True)
    assert "needs a file attached" in flashes(answer.get_data(as_text=True))
    assert db.session.get(Task, first.id).status == "in_progress"
    sam.post("/attachments", headers=HX, content_type="multipart/form-data", data={
        "owner_type": "task", "owner_id": str(first.id), "csrf_token": sam.csrf(),
        "file": (io.BytesIO(b"%PDF-1.4 signed"), "act.pdf")})
    sam.form(f"/tasks/{first.id}/status", {"action": "done"})
    assert db.session.get(Task, first.id).status == "done"
    fred = page(signed_in(office.Fred), "/tasks/")
    assert "Bill the client" in text(part(fred, "day-today"))
    assert "Onboarding" in text(part(fred, "day-today"))  # the run it belongs to
    timeline = parts(page(signed_in(office.Helen), f"/tasks/runs/{run.id}"), "tl-row")
    assert 'data-tone="done"' in timeline[0] or "tl-done" in timeline[0]
    assert "tl-active" in timeline[1]


def test_a_run_needs_a_holder_for_its_first_post(office, signed_in, admin):
    from app.orgchart import services as org

    lonely_unit = org.create_unit(admin, {"name": "Island", "kind": "company"})
    lonely = org.create_post(admin, {"unit_id": lonely_unit.id, "title": "Lighthouse keeper"})
    programme = tasks.create_programme(office.Helen, {"theme": "x", "name": "Keep the light",
                                                      "stages": [{"title": "Light it",
                                                                  "post_id": lonely.id}]})
    commit()
    c = signed_in(office.Helen)
    answer = c.form("/tasks/runs/new", {"programme_id": str(programme.id), "title": "Tonight"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "no holder" in text(part(html, "error-programme_id")) and 'value="Tonight"' in html
    answer = c.form("/tasks/runs/new", {"programme_id": str(programme.id),
                                        "link_other": "project:999999"})
    assert answer.status_code == 422 and part(answer.get_data(as_text=True), "error-link_other")
    answer = c.form("/tasks/runs/new", {"programme_id": ""})
    assert answer.status_code == 422 and part(answer.get_data(as_text=True), "error-programme_id")
    assert db.session.scalar(select(func.count()).select_from(Run)) == 0


def test_projects_list_and_create(office, signed_in):
    c = signed_in(office.Sam)
    html = page(c, "/tasks/projects")
    assert "No projects yet." in html
    forms_have_csrf(html)
    answer = c.form("/tasks/projects", {"name": "  ", "description": "Shelves for the depot"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert part(html, "error-name") and "Shelves for the depot" in html
    assert db.session.scalar(select(func.count()).select_from(Project)) == 0
    answer = c.form("/tasks/projects", {"name": "Warehouse", "description": "Shelves"})
    project = db.session.scalars(select(Project)).one()
    assert answer.headers["Location"] == f"/tasks/projects#project-{project.id}"
    row = text(part(page(c, "/tasks/projects"), "project-row"))
    assert "Warehouse" in row and "Sam" in row and "0 open tasks" in row


def test_the_sidebar_counts(office, signed_in, day_of_sam):
    tasks.create_task(office.Sam, {"title": "Ask finance", "assignee": f"post:{office.cashier.id}"})
    commit()
    helen = page(signed_in(office.Helen), "/tasks/board")
    assert part(helen, "count-set") == "5"  # late, today, later, Helen's own, Sara's visit
    fred = page(signed_in(office.Fred), "/tasks/programmes")
    assert part(fred, "count-requests") == "1"
