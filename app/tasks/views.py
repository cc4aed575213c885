"""Pages of tasks and programmes: my day, tasks I set, the team board, search, a task and
its form, programmes, runs with their timeline, projects. Every change goes through
app.tasks.services; these views only shape what is typed and what is shown."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta

from flask import (
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_date, format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, or_, select

from app.core import attachments, links, markup
from app.core.clock import utcnow
from app.core.errors import DomainError, PermissionDenied
from app.core.forms import MAX_ID, local_input, utc_from_local, zone_of
from app.core.models import User
from app.core.services import is_admin
from app.extensions import db
from app.orgchart import chart as charts
from app.tasks import bp, schemas, services
from app.tasks.models import ACTIVE, CLOSED, STATUSES, Run, Step, Task

STEP_ROWS_MAX = schemas.STEPS_MAX + 1  # one more than allowed, so the rule is the one to refuse
STAGE_ROWS_MAX = schemas.STAGES_MAX + 1

STATUS_NAMES = {"requested": _l("Requested"), "waiting": _l("Waiting"), "open": _l("Open"),
                "in_progress": _l("In progress"), "done": _l("Done"),
                "cancelled": _l("Cancelled"), "declined": _l("Declined")}
STATUS_STYLES = {"requested": "warning", "waiting": "secondary", "open": "primary",
                 "in_progress": "info", "done": "success", "cancelled": "secondary",
                 "declined": "danger"}
PRIORITY_NAMES = {"low": _l("Low"), "normal": _l("Normal"), "high": _l("High"),
                  "urgent": _l("Urgent")}
RUN_STATUS_NAMES = {"running": _l("Running"), "done": _l("Finished"), "cancelled": _l("Cancelled")}
BOARD_NAMES = {"requested": _l("Requested"), "open": _l("To do"),
               "in_progress": _l("In progress"), "done": _l("Done")}
# Moving a card on the board from one column to another: the action it means.
BOARD_MOVES = {("open", "in_progress"): "start", ("open", "done"): "done",
               ("in_progress", "done"): "done", ("done", "open"): "reopen"}


# --- shared by the templates ----------------------------------------------------------------

@bp.app_context_processor
def tasks_links():
    """Other modules' pages offer "Create task" and "Start a programme" for their records."""
    if not has_request_context():
        return {}

    def tasks_new_url(**params) -> str | None:
        if "tasks.new" not in current_app.view_functions:
            return None
        return url_for("tasks.new", **{k: v for k, v in params.items() if v})

    def tasks_run_url(**params) -> str:
        return url_for("tasks.run_new", **{k: v for k, v in params.items() if v})

    return {"tasks_new_url": tasks_new_url, "tasks_run_url": tasks_run_url}


@bp.context_processor
def tasks_shell():
    return {"status_names": STATUS_NAMES, "status_styles": STATUS_STYLES,
            "priority_names": PRIORITY_NAMES, "run_status_names": RUN_STATUS_NAMES,
            "tasks_sidebar": _sidebar, "local_input": local_input, "now": utcnow(),
            "post_name": _post_name, "markdown": markup.render}


def _post_name(post_id: int | None) -> str:
    post = charts.load().posts.get(post_id) if post_id else None
    return post.title if post else ""


def _counts() -> dict[str, int]:
    """The left column's badges, counted once per page after the page's own changes."""
    if "_cache_task_counts" not in g:
        me, now = current_user.id, utcnow()
        mine = (Task.assignee_id == me) & Task.status.in_(ACTIVE)
        row = db.session.execute(select(
            func.count().filter(mine),
            func.count().filter(mine & (Task.due_at < now)),
            func.count().filter((Task.requested_of_id == me) & (Task.status == "requested")),
            func.count().filter((Task.creator_id == me) & Task.run_id.is_(None)
                                & Task.status.in_(("requested", "open", "in_progress"))),
        ).where(or_(Task.assignee_id == me, Task.requested_of_id == me,
                    Task.creator_id == me))).one()
        g._cache_task_counts = {"mine": row[0], "overdue": row[1], "requests": row[2],
                                "set": row[3]}
    return g._cache_task_counts


def _sidebar() -> dict:
    return {"counts": _counts(), "can_design": services.can_design(current_user)}


def _fragment(target: str) -> bool:
    return bool(request.headers.get("HX-Request")) and request.headers.get("HX-Target") == target


def _arg_id(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        abort(404)
    return int(raw)


def _page_number() -> int:
    return min(max(request.args.get("page", 1, type=int), 1), 100_000)





def _day_bound(value: str | None, *, end: bool = False):
    """A date field (the user's day) as the UTC moment it starts (or, for `end`, the moment
    the next day starts); what cannot be read is passed on as typed."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=zone_of(current_user)).astimezone(UTC).isoformat()


def _int(value: str | None):
    """An id field: empty is none; anything but an id in range is passed on as typed."""
    value = (value or "").strip()
    if not value:
        return None
    return int(value) if value.isdigit() and 0 < int(value) <= MAX_ID else value


def _back(default: str) -> str:
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


def _message(exc: DomainError) -> str:
    details = " ".join(" ".join(str(m) for m in v) for v in exc.fields.values()
                       if isinstance(v, list))
    return f"{exc.message} {details}".strip() if details != exc.message else exc.message


def _run(action: Callable, ok: str | None, back: str, then: Callable | str | None = None):
    """Run a service from a form: flash the outcome and go on; on a refusal undo it, flash
    the reason and go back. A record one may not see stays a 404."""
    try:
        result = action()
    except DomainError as exc:
        if exc.status == 404:
            raise
        db.session.rollback()
        flash(_message(exc), "danger")
        return redirect(_back(back))
    if ok:
        flash(ok, "success")
    return redirect(then(result) if callable(then) else (then or _back(back)))


def _errors(exc: DomainError) -> dict:
    errors = {k: [str(m) for m in v] if isinstance(v, list) else [str(v)]
              for k, v in exc.fields.items()}
    errors.setdefault("_", [exc.message])
    return errors


def _people(ids: Iterable[int | None]) -> dict[int, User]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))}


def _run_titles(tasks: Iterable[Task]) -> dict[int, str]:
    ids = {t.run_id for t in tasks if t.run_id}
    if not ids:
        return {}
    return dict(db.session.execute(select(Run.id, Run.title).where(Run.id.in_(ids))).all())


def _step_counts(task_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{task id: (steps done, steps)} for a page of tasks, in one query."""
    if not task_ids:
        return {}
    rows = db.session.execute(
        select(Step.task_id, func.count(Step.done_at), func.count())
        .where(Step.task_id.in_(task_ids)).group_by(Step.task_id)).all()
    return {tid: (done, total) for tid, done, total in rows}


# --- my day ---------------------------------------------------------------------------------

def _day_context() -> dict:
    day = services.my_day(current_user)
    every = [*day.requests, *day.overdue, *day.today, *day.upcoming, *day.undated]
    return {"day": day, "team": services.team_of(current_user),
            "runs": _run_titles([*every, *(s.task for s in day.steps)]),
            "steps": _step_counts([t.id for t in every]),
            "empty": not (every or day.steps), "today_text": format_date(utcnow(), "full")}


@bp.get("/")
def my_day():
    """One's own work: requests to decide, overdue, today, upcoming, undated, and steps
    given to one in others' tasks. Live: the list is fetched again on every task event."""
    ctx = _day_context()
    if _fragment("task-day"):
        return render_template("tasks/_day.html", oob_sidebar=True, **ctx)
    return render_template("tasks/my_day.html", **ctx)


# --- tasks I set ----------------------------------------------------------------------------

@bp.get("/set")
def set_by():
    state = request.args.get("state") or None
    if state is not None and state not in STATUSES:
        abort(404)
    page = db.paginate(services.set_by(current_user, state), page=_page_number(),
                       per_page=current_app.config["PER_PAGE"], error_out=False)
    return render_template("tasks/set.html", page=page, state=state,
                           steps=_step_counts([t.id for t in page.items]),
                           states=[s for s in STATUSES if s != "waiting"])


# --- the team board -------------------------------------------------------------------------

def _board_context() -> dict:
    person_id = _arg_id("person")
    columns = services.board(current_user, person_id)
    every = [t for c in columns.values() for t in c["tasks"]]
    return {"columns": columns, "names": BOARD_NAMES, "person_id": person_id,
            "team": services.team_of(current_user), "runs": _run_titles(every),
            "steps": _step_counts([t.id for t in every]),
            "editable": {t.id for t in every if services.can_edit(current_user, t)},
            "moves": BOARD_MOVES}


@bp.get("/board")
def board():
    """The work of one's scope by status; ?person= narrows it to one of the team."""
    ctx = _board_context()
    if _fragment("task-board"):
        return render_template("tasks/_board.html", oob_sidebar=True, **ctx)
    return render_template("tasks/board.html", **ctx)


@bp.post("/board/move")
def board_move():
    """A card dropped in another column: the action that move means, or a refusal."""
    task_id = _int(request.form.get("task_id"))
    move = (request.form.get("from", ""), request.form.get("to", ""))
    back = url_for("tasks.board")
    if not isinstance(task_id, int):
        abort(404)
    if move not in BOARD_MOVES:
        flash(_("A card cannot move that way."), "warning")
        return redirect(_back(back))
    return _run(lambda: services.set_status(current_user, task_id, {"action": BOARD_MOVES[move]}),
                None, back)


# --- search ---------------------------------------------------------------------------------

SEARCH_FIELDS = ("q", "status", "assignee_id", "creator_id", "priority", "link", "due_from",
                 "due_to", "overdue")


@bp.get("/search")
def search():
    form = {k: request.args.get(k, "") for k in SEARCH_FIELDS}
    filters = {"q": form["q"], "status": form["status"] or None,
               "assignee_id": _int(form["assignee_id"]), "creator_id": _int(form["creator_id"]),
               "priority": form["priority"] or None, "link": form["link"].strip() or None,
               "due_from": _day_bound(form["due_from"]),
               "due_to": _day_bound(form["due_to"], end=True),
               "overdue": form["overdue"] in ("1", "true", "on")}
    if form["status"] and form["status"] not in STATUSES:
        errors = {"status": [_("Choose a status from the list.")]}
        page, status = None, 422
    else:
        try:
            stmt = services.search(current_user, filters)
        except DomainError as exc:
            db.session.rollback()
            errors, page, status = _errors(exc), None, 422
        else:
            errors, status = {}, 200
            page = db.paginate(stmt, page=_page_number(), per_page=current_app.config["PER_PAGE"],
                               error_out=False)
    chart = charts.load()
    people = sorted({current_user.id: current_user, **chart.people()}.values(),
                    key=lambda u: u.name.casefold())
    items = page.items if page else []
    return render_template(
        "tasks/search.html", form=form, errors=errors, page=page, people=people,
        projects=services.projects(), runs=_run_titles(items),
        steps=_step_counts([t.id for t in items]), searched=any(request.args.values()),
        ), status


# --- a task ---------------------------------------------------------------------------------

ACTION_WORDS = {
    "task.create": _l("created the task"), "task.start": _l("started the work"),
    "task.done": _l("marked it done"), "task.reopen": _l("reopened it"),
    "task.cancel": _l("cancelled it"), "task.accept": _l("accepted the request"),
    "task.decline": _l("declined the request"), "task.update": _l("changed the task"),
    "task.step_add": _l("added a step"), "task.step_delete": _l("removed a step"),
    "task.comment": _l("commented"), "task.reminder": _l("set a reminder"),
    "task.follow_post": _l("passed to the post's new holder"),
    "attachment.add": _l("attached a file"), "attachment.delete": _l("removed a file"),
}
FIELD_NAMES = {"title": _l("Title"), "status": _l("Status"), "priority": _l("Priority"),
               "assignee_id": _l("Assignee"), "post_id": _l("Post"), "start_at": _l("Start"),
               "due_at": _l("Due"), "link": _l("Link"), "reason": _l("Reason")}


def _when_text(value) -> str:
    if not value:
        return "—"
    try:
        return format_datetime(datetime.fromisoformat(value), "short")
    except (TypeError, ValueError):
        return str(value)


def _value_text(name: str, value, people: dict[int, User]) -> str:
    if value is None or value == "":
        return "—"
    if name == "assignee_id":
        return people[value].name if value in people else f"#{value}"
    if name == "post_id":
        return _post_name(value) or f"#{value}"
    if name == "status":
        return str(STATUS_NAMES.get(value, value))
    if name == "priority":
        return str(PRIORITY_NAMES.get(value, value))
    if name in ("start_at", "due_at", "remind_at"):
        return _when_text(value)
    return str(value)


def _history(task_id: int) -> list[dict]:
    """The audit events of a task in words: who did what, and what changed from what."""
    # Someone's reminders are their own business: the history shows only one's own.
    events = [e for e in services.history(current_user, task_id)
              if e.action != "task.reminder" or e.actor_id == current_user.id]
    ids: set[int] = set()
    for e in events:
        for side in (e.before or {}, e.after or {}):
            if isinstance(side.get("assignee_id"), int):
                ids.add(side["assignee_id"])
            ids.update(i for i in side.get("told", []) if isinstance(i, int))
    people = _people(ids)
    out = []
    for e in events:
        before, after = e.before or {}, e.after or {}
        words = str(ACTION_WORDS.get(e.action, e.action))
        detail, changes = "", []
        if e.action == "task.update":
            for name in FIELD_NAMES:
                if name in after and before.get(name) != after.get(name):
                    changes.append((str(FIELD_NAMES[name]), _value_text(name, before.get(name), people),
                                    _value_text(name, after.get(name), people)))
        elif e.action in ("task.create", "stage.open", "task.accept", "task.follow_post"):
            if after.get("assignee_id"):
                detail = _("for %(name)s", name=_value_text("assignee_id", after["assignee_id"],
                                                            people))
            if e.action == "task.create" and after.get("due_at"):
                detail += (" · " if detail else "") + _("due %(when)s",
                                                        when=_when_text(after["due_at"]))
        elif e.action == "task.decline":
            detail = after.get("reason") or ""
        elif e.action == "task.step":
            step = after.get("step", "")
            if after.get("done") is True:
                words, detail = _("checked a step"), step
            elif after.get("done") is False:
                words, detail = _("unchecked a step"), step
            else:
                words, detail = _("changed a step"), step
        elif e.action in ("task.step_add",):
            detail = after.get("step", "")
        elif e.action == "task.step_delete":
            detail = before.get("step", "")
        elif e.action == "task.reminder":
            detail = _when_text(after.get("remind_at"))
        elif e.action == "task.escalate":
            detail = ", ".join(people[i].name for i in after.get("told", []) if i in people)
        elif e.action == "attachment.add":
            detail = after.get("filename", "")
        elif e.action == "attachment.delete":
            detail = before.get("filename", "")
        actor = e.actor.name if e.actor else _("The CRM")
        if e.action == "stage.open":
            actor, words = None, _("The stage opened")
            if after.get("assignee_id"):
                words = _("The stage opened for %(name)s",
                          name=_value_text("assignee_id", after["assignee_id"], people))
            detail = ""
        elif e.action == "task.escalate":
            actor, words = None, _("Overdue; the superior was told")
        out.append({"at": e.at, "actor": actor,
                    "words": words, "detail": detail, "changes": changes, "action": e.action})
    return out


def _task_context(task: Task, **extra) -> dict:
    me = current_user
    editable = services.can_edit(me, task)
    run = task.run if task.run_id else None
    people = _people([task.requested_of_id, task.done_by_id, *(w.user_id for w in task.watchers),
                      *(s.assignee_id for s in task.steps), *(s.done_by_id for s in task.steps)])
    step_people = sorted({me.id: me, **charts.load().people(), **people}.values(),
                         key=lambda u: u.name.casefold())
    can_attach = editable or me.id in {s.assignee_id for s in task.steps}
    ctx = {
        "task": task, "editable": editable, "run": run, "people": people,
        "link": services.link_of(me, task), "watching": me.id in {w.user_id for w in task.watchers},
        "comments": services.comments_of(me, task.id),
        "reminders": services.reminders_of(me, task.id),
        "files": attachments.list_for(me, services.OWNER, task.id), "can_attach": can_attach,
        "history": _history(task.id), "team": services.team_of(me),
        "deciding": task.status == "requested" and (task.requested_of_id == me.id or is_admin(me)),
        "checkable": {s.id for s in task.steps
                      if task.status in ACTIVE and (editable or s.assignee_id == me.id)},
        "step_people": step_people, "owner_type": services.OWNER,
        "step_form": {}, "step_errors": {}, "reminder_form": {}, "reminder_errors": {},
        "step_error": None, "comment_error": None,
    }
    ctx.update(extra)
    return ctx


def _to_task(task_id: int, anchor: str = "") -> str:
    return url_for("tasks.detail", task_id=task_id) + (f"#{anchor}" if anchor else "")


@bp.get("/<int:task_id>")
def detail(task_id: int):
    task = services.get_task(current_user, task_id)
    ctx = _task_context(task)
    if request.headers.get("HX-Request") and request.args.get("part") == "live":
        return render_template("tasks/_task_live.html", **ctx)
    if _fragment("task-comment-list"):
        return render_template("tasks/_comments.html", **ctx)
    return render_template("tasks/detail.html", **ctx)


def _task_again(task_id: int, exc: DomainError, **extra):
    """The task page again after a refused form, with what was typed and what is wrong."""
    db.session.rollback()
    task = services.get_task(current_user, task_id)
    return render_template("tasks/detail.html", **_task_context(task, **extra)), exc.status


@bp.post("/<int:task_id>/status")
def set_status(task_id: int):
    action = request.form.get("action", "")
    done = {"start": _("Started."), "done": _("Done. The person who set it is told."),
            "reopen": _("Reopened."), "cancel": _("Cancelled.")}
    return _run(lambda: services.set_status(current_user, task_id, {"action": action}),
                done.get(action), _to_task(task_id))


@bp.post("/<int:task_id>/decide")
def decide(task_id: int):
    accept = request.form.get("accept") == "1"
    data = {"accept": accept, "assignee_id": _int(request.form.get("assignee_id")),
            "reason": request.form.get("reason", "")}
    ok = _("Accepted: the work is given.") if accept else _("Declined; the person who asked is "
                                                            "told why.")
    return _run(lambda: services.decide(current_user, task_id, data), ok, _to_task(task_id))


def _step_data(form, prefix: str = "") -> dict:
    return {"title": form.get(f"{prefix}title", ""),
            "assignee_id": _int(form.get(f"{prefix}assignee_id")),
            "due_at": utc_from_local(form.get(f"{prefix}due_at")),
            "parallel": form.get(f"{prefix}parallel") == "1",
            "required": form.get(f"{prefix}required") == "1"}


@bp.post("/<int:task_id>/steps")
def add_step(task_id: int):
    form = request.form.to_dict()
    try:
        services.add_step(current_user, task_id, _step_data(request.form))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _task_again(task_id, exc, step_form=form, step_errors=_errors(exc))
    flash(_("The step is added."), "success")
    return redirect(_to_task(task_id, "steps"))


def _steps_answer(task_id: int, error: str | None = None, status: int = 200):
    task = services.get_task(current_user, task_id)
    return render_template("tasks/_task_live.html", **_task_context(task, step_error=error)), status


@bp.post("/<int:task_id>/steps/<int:step_id>")
def update_step(task_id: int, step_id: int):
    """Check a step done or not done (htmx answers with the task's live parts)."""
    data = {"done": request.form.get("done") == "1"}
    if not request.headers.get("HX-Request"):
        return _run(lambda: services.update_step(current_user, task_id, step_id, data), None,
                    _to_task(task_id, "steps"))
    try:
        services.update_step(current_user, task_id, step_id, data)
    except DomainError as exc:
        if exc.status == 404:
            raise
        db.session.rollback()
        return _steps_answer(task_id, _message(exc), exc.status)
    return _steps_answer(task_id)


@bp.post("/<int:task_id>/steps/<int:step_id>/delete")
def delete_step(task_id: int, step_id: int):
    return _run(lambda: services.delete_step(current_user, task_id, step_id),
                _("The step is removed."), _to_task(task_id, "steps"))


@bp.post("/<int:task_id>/comments")
def comment(task_id: int):
    data = {"body": request.form.get("body", "")}
    if not request.headers.get("HX-Request"):
        return _run(lambda: services.add_comment(current_user, task_id, data), None,
                    _to_task(task_id, "comments"))
    try:
        services.add_comment(current_user, task_id, data)
    except DomainError as exc:
        if exc.status == 404:
            raise
        db.session.rollback()
        task = services.get_task(current_user, task_id)
        return render_template("tasks/_comments.html", **_task_context(
            task, comment_error=_message(exc))), exc.status
    task = services.get_task(current_user, task_id)
    return render_template("tasks/_comments.html", **_task_context(task))


@bp.post("/<int:task_id>/watch")
def watch(task_id: int):
    on = request.form.get("on") == "1"
    return _run(lambda: services.watch(current_user, task_id, on),
                _("You follow this task.") if on else _("You no longer follow this task."),
                _to_task(task_id))


@bp.post("/<int:task_id>/reminders")
def add_reminder(task_id: int):
    form = request.form.to_dict()
    data = {"remind_at": utc_from_local(form.get("remind_at")), "note": form.get("note", "")}
    try:
        services.add_reminder(current_user, task_id, data)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _task_again(task_id, exc, reminder_form=form, reminder_errors=_errors(exc))
    flash(_("The reminder is set."), "success")
    return redirect(_to_task(task_id, "reminders"))


@bp.post("/reminders/<int:reminder_id>/delete")
def delete_reminder(reminder_id: int):
    return _run(lambda: services.delete_reminder(current_user, reminder_id),
                _("The reminder is removed."), url_for("tasks.my_day"))


@bp.post("/preview")
def preview():
    return render_template("tasks/_preview.html", html=markup.render(
        request.form.get("description") or request.form.get("instructions") or ""))


# --- the task form --------------------------------------------------------------------------

ROW = re.compile(r"^(?P<name>[a-z]+)-(?P<index>\d{1,4})-(?P<field>[a-z_]+)$")


def _rows(form, name: str, limit: int) -> list[dict]:
    """Rows of an editor (`steps-3-title`, ...) in the order they were written; rows left
    wholly empty are dropped."""
    rows: dict[int, dict] = defaultdict(dict)
    for key in form:
        m = ROW.match(key)
        if m and m["name"] == name:
            rows[int(m["index"])][m["field"]] = form.get(key, "")
    out = [rows[i] for i in sorted(rows)]
    return [r for r in out if any(str(v).strip() for k, v in r.items()
                                  if k not in ("required", "parallel", "needs_attachment",
                                               "duration_hours"))][:limit]


def _assignee_options() -> list[tuple[str, list[tuple[str, str]]]]:
    """Whom one may give work to, grouped: oneself, one's team, the posts one directs, and
    (as a request to their head) everyone and every post else."""
    me = current_user
    chart = charts.load()
    admin = is_admin(me)
    team = {u.id: u for u in chart.subordinates_of(me.id)}
    mine = chart.effective_posts(me.id)
    directed = {p.id for p in mine} | {b.id for p in mine for b in chart.posts_below(p)}

    def post_label(post) -> str:
        holding = chart.holding(post)
        names = ", ".join(u.name for u in holding.users)
        if not holding.vacant:
            return f"{post.title} — {names}"
        if holding.users:
            return f"{post.title} — " + _("vacant, held from above by %(names)s", names=names)
        return f"{post.title} — " + _("vacant")

    posts = sorted(chart.posts.values(), key=lambda p: (p.title.casefold(), p.id))
    others = sorted((u for uid, u in chart.people().items() if uid not in team and uid != me.id),
                    key=lambda u: u.name.casefold())
    groups = [(_("You"), [("", _("Myself"))]),
              (_("Your team"), [(f"user:{u.id}", u.name) for u in team.values()]),
              (_("Posts you direct"), [(f"post:{p.id}", post_label(p)) for p in posts
                                       if admin or p.id in directed])]
    ask = "" if admin else " · " + _("as a request to their head")
    groups += [(_("Other people") + ask, [(f"user:{u.id}", u.name) for u in others]),
               (_("Other posts") + ask, [(f"post:{p.id}", post_label(p)) for p in posts
                                         if not admin and p.id not in directed])]
    return [(label, options) for label, options in groups if options]


def _link_options(*tokens: str | None) -> list[tuple[str, str]]:
    """Records a task or a run may be about: the ones given, then every project."""
    options: list[tuple[str, str]] = []
    names = links.kinds()
    for token in dict.fromkeys(t for t in tokens if t):
        kind, _sep, raw = token.partition(":")
        found = links.resolve(current_user, kind, int(raw)) if raw.isdigit() and len(raw) < 10 \
            else None
        if found is not None:
            options.append((token, f"{names.get(kind, kind)}: {found.title}"))
    seen = {t for t, _label in options}
    options += [(f"project:{p.id}", f"{names.get('project', 'Project')}: {p.name}")
                for p in services.projects() if f"project:{p.id}" not in seen]
    return options


def _form_page(template: str, form: dict, errors: dict | None = None, status: int = 200,
               **extra):
    chart = charts.load()
    people = sorted({current_user.id: current_user, **chart.people()}.values(),
                    key=lambda u: u.name.casefold())
    return render_template(template, form=form, errors=errors or {},
                           assignees=_assignee_options(), people=people,
                           link_options=_link_options(form.get("link"), form.get("link_was")),
                           **extra), status


def _task_data(form) -> dict:
    return {"title": form.get("title", ""), "description": form.get("description", ""),
            "assignee": form.get("assignee") or None,
            "watchers": [_int(v) for v in form.getlist("watchers") if v.strip()],
            "start_at": utc_from_local(form.get("start_at")), "due_at": utc_from_local(form.get("due_at")),
            "priority": form.get("priority") or "normal", "link": form.get("link") or None}


def _step_rows(form) -> list[dict]:
    return [{"title": r.get("title", ""), "assignee_id": _int(r.get("assignee_id")),
             "due_at": utc_from_local(r.get("due_at")), "parallel": r.get("parallel") == "1",
             "required": r.get("required") == "1"}
            for r in _rows(form, "steps", STEP_ROWS_MAX)]


def _row_errors(rows: list[dict], schema) -> dict[int, dict]:
    """Which row of an editor a refusal is about, for the page (the service refused)."""
    out = {}
    for i, row in enumerate(rows):
        problems = schema.validate(row)
        if problems:
            out[i] = {k: [str(m) for m in v] if isinstance(v, list) else [str(v)]
                      for k, v in problems.items()}
    return out


def _typed(form) -> dict:
    """What was typed, as the form shows it again."""
    out = form.to_dict()
    out["watchers"] = [v for v in form.getlist("watchers") if v.strip()]
    return out


@bp.route("/new", methods=["GET", "POST"])
def new():
    """A new task; ?link=message:12&title=... starts it from a message, ?assignee= for whom."""
    if request.method == "GET":
        link = request.args.get("link", "").strip()[:40]
        form = {"title": request.args.get("title", "")[:schemas.TITLE_MAX],
                "assignee": request.args.get("assignee", "")[:40], "priority": "normal",
                "link": link, "watchers": []}
        if link and not _link_options(link)[:1] or (link and _link_options(link)[0][0] != link):
            flash(_("The record to link is not there or not yours to see."), "warning")
            form["link"] = ""
        return _form_page("tasks/form.html", form, steps=[{"required": "1"}])
    data = _task_data(request.form)
    data["steps"] = _step_rows(request.form)
    try:
        task = services.create_task(current_user, data)
    except DomainError as exc:
        db.session.rollback()
        rows = _rows(request.form, "steps", STEP_ROWS_MAX)
        errors, step_errors = _errors(exc), _row_errors(data["steps"], schemas.StepIn())
        if step_errors:
            errors["steps"] = [_("Check the steps marked below.")]
        return _form_page("tasks/form.html", _typed(request.form), errors, exc.status,
                          steps=rows or [{"required": "1"}], step_errors=step_errors)
    if task.status == "requested":
        flash(_("Sent as a request: the head of their unit decides whether to take it on."),
              "info")
    else:
        flash(_("The task is set."), "success")
    return redirect(_to_task(task.id))


@bp.route("/<int:task_id>/edit", methods=["GET", "POST"])
def edit(task_id: int):
    task = services.get_task(current_user, task_id)
    if not services.can_edit(current_user, task):
        raise PermissionDenied(_("Only the person who set this task or the one doing it may "
                                 "change it."))
    if task.status in CLOSED:
        flash(_("This task is closed; reopen it to change it."), "warning")
        return redirect(_to_task(task.id))
    token = f"post:{task.post_id}" if task.post_id else (
        f"user:{task.assignee_id}" if task.assignee_id and task.assignee_id != current_user.id
        else "")
    link = f"{task.link_kind}:{task.link_id}" if task.link_kind else ""
    if request.method == "GET":
        form = {"title": task.title, "description": task.description, "assignee": token,
                "assignee_was": token, "watchers": [str(w.user_id) for w in task.watchers],
                "start_at": local_input(task.start_at), "due_at": local_input(task.due_at),
                "priority": task.priority, "link": link, "link_was": link}
        return _form_page("tasks/form.html", form, task=task)
    data = _task_data(request.form)
    if task.is_stage or data["assignee"] == (request.form.get("assignee_was") or None):
        data.pop("assignee")  # unchanged: a request is not asked again
    if data["link"] == (request.form.get("link_was") or None):
        data.pop("link")
    try:
        services.update_task(current_user, task_id, data)
    except DomainError as exc:
        if exc.status == 404:
            raise
        db.session.rollback()
        task = services.get_task(current_user, task_id)
        return _form_page("tasks/form.html", _typed(request.form), _errors(exc), exc.status,
                          task=task)
    flash(_("Saved."), "success")
    return redirect(_to_task(task_id))


# --- programmes -----------------------------------------------------------------------------

def _require_designer() -> None:
    if not services.can_design(current_user):
        raise PermissionDenied(_("Only heads, chart editors and administrators write "
                                 "programmes."))


@bp.get("/programmes")
def programmes():
    """Every programme, by theme (?theme= shows one theme)."""
    archived = request.args.get("archived") == "1"
    theme = request.args.get("theme") or None
    found = services.programmes(include_archived=archived)
    themes = sorted({p.theme for p in found}, key=str.casefold)
    shown = [p for p in found if theme is None or p.theme == theme]
    return render_template("tasks/programmes.html", themes=themes, theme=theme, shown=shown,
                           archived=archived, can_design=services.can_design(current_user))


def _holding_text(post_id: int) -> tuple[str, str, bool]:
    """A post's title, who does it, and whether nobody does."""
    chart = charts.load()
    post = chart.posts.get(post_id)
    if post is None:
        return _("(archived post)"), "", True
    holding = chart.holding(post)
    names = ", ".join(u.name for u in holding.users)
    if not holding.users:
        return post.title, _("vacant, nobody above holds it"), True
    if holding.vacant:
        return post.title, _("vacant, held from above by %(names)s", names=names), False
    return post.title, names, False


@bp.get("/programmes/<int:programme_id>")
def programme(programme_id: int):
    found = services.get_programme(programme_id)
    number = request.args.get("version", type=int)
    version = next((v for v in found.versions if v.number == number), None) if number \
        else found.current
    if version is None:
        abort(404)
    version_ids = [v.id for v in found.versions]
    run_counts = dict(db.session.execute(
        select(Run.version_id, func.count()).where(Run.version_id.in_(version_ids))
        .group_by(Run.version_id)).all())
    recent = db.session.scalars(services.runs(current_user).where(
        Run.version_id.in_(version_ids)).limit(10)).all()
    authors = _people([v.created_by_id for v in found.versions] + [found.created_by_id])
    titles = {s.key: s.title for s in version.stages}
    return render_template("tasks/programme.html", programme=found, version=version,
                           run_counts=run_counts, recent=recent, authors=authors,
                           titles=titles, holding=_holding_text,
                           pipeline=links.resolve(current_user, "pipeline", found.won_pipeline_id),
                           can_design=services.can_design(current_user))


def _post_options() -> list[tuple[int, str]]:
    chart = charts.load()
    out = []
    for post in chart.posts.values():
        unit = chart.units.get(post.unit_id)
        out.append((post.id, f"{post.title} · {unit.name}" if unit else post.title))
    return sorted(out, key=lambda x: x[1].casefold())


def _after(value: str | None):
    """The "after" field: empty waits for the stage before, "-" for nothing, else keys."""
    value = (value or "").strip()
    if not value:
        return None
    if value == "-":
        return []
    return [k for k in re.split(r"[\s,;]+", value) if k]


def _duration(value: str | None):
    value = (value or "").strip()
    if not value:
        return 24
    return int(value) if value.isdigit() and len(value) < 7 else value


def _stage_rows(form) -> list[dict]:
    return [{"key": r.get("key", "").strip() or None, "title": r.get("title", ""),
             "post_id": _int(r.get("post_id")), "instructions": r.get("instructions", ""),
             "duration_hours": _duration(r.get("duration_hours")),
             "checklist": [c for c in (r.get("checklist") or "").splitlines() if c.strip()],
             "needs_attachment": r.get("needs_attachment") == "1",
             "after": _after(r.get("after"))}
            for r in _rows(form, "stages", STAGE_ROWS_MAX)]


def _programme_page(form: dict, stages: list[dict], errors: dict | None = None,
                    status: int = 200, **extra):
    themes = sorted({p.theme for p in services.programmes(include_archived=True)})
    return render_template("tasks/programme_form.html", form=form, stages=stages,
                           errors=errors or {}, posts=_post_options(), themes=themes,
                           pipelines=links.choices(current_user, "pipeline"),
                           stage_errors=extra.pop("stage_errors", {}), **extra), status


def _programme_data(form) -> dict:
    return {"theme": form.get("theme", ""), "name": form.get("name", ""),
            "description": form.get("description", ""), "stages": _stage_rows(form),
            "start_on_deal_won": form.get("start_on_deal_won") == "1",
            "won_pipeline_id": _int(form.get("won_pipeline_id"))}


def _programme_refused(exc: DomainError, data: dict, **extra):
    db.session.rollback()
    rows = _rows(request.form, "stages", STAGE_ROWS_MAX)
    errors, stage_errors = _errors(exc), _row_errors(data["stages"], schemas.StageIn())
    if stage_errors:
        errors["stages"] = [_("Check the stages marked below.")]
    return _programme_page(request.form.to_dict(), rows or [{}], errors, exc.status,
                           stage_errors=stage_errors, **extra)


@bp.route("/programmes/new", methods=["GET", "POST"])
def programme_new():
    _require_designer()
    if request.method == "GET":
        return _programme_page({"theme": request.args.get("theme", "")[:80]},
                               [{"duration_hours": "24"}])
    data = _programme_data(request.form)
    try:
        created = services.create_programme(current_user, data)
    except DomainError as exc:
        return _programme_refused(exc, data)
    flash(_("The programme is saved."), "success")
    return redirect(url_for("tasks.programme", programme_id=created.id))


def _stage_form(stage) -> dict:
    return {"key": stage.key, "title": stage.title, "post_id": str(stage.post_id),
            "instructions": stage.instructions, "duration_hours": str(stage.duration_hours),
            "checklist": "\n".join(stage.checklist or []),
            "needs_attachment": "1" if stage.needs_attachment else "",
            "after": ", ".join(stage.after) if stage.after else "-"}


@bp.route("/programmes/<int:programme_id>/edit", methods=["GET", "POST"])
def programme_edit(programme_id: int):
    _require_designer()
    found = services.get_programme(programme_id)
    if request.method == "GET":
        form = {"theme": found.theme, "name": found.name, "description": found.description,
                "start_on_deal_won": found.start_on_deal_won,
                "won_pipeline_id": found.won_pipeline_id or ""}
        return _programme_page(form, [_stage_form(s) for s in found.current.stages],
                               programme=found)
    data = _programme_data(request.form)
    number = found.current.number
    try:
        saved = services.update_programme(current_user, programme_id, data)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _programme_refused(exc, data, programme=found)
    if saved.current.number != number:
        flash(_("Saved as version %(n)d; runs already started keep the version they began with.",
                n=saved.current.number), "success")
    else:
        flash(_("Saved."), "success")
    return redirect(url_for("tasks.programme", programme_id=programme_id))


@bp.post("/programmes/<int:programme_id>/archive")
def programme_archive(programme_id: int):
    back = url_for("tasks.programme", programme_id=programme_id)
    return _run(lambda: services.archive_programme(current_user, programme_id),
                _("The programme is archived; runs already started go on."), back,
                then=url_for("tasks.programmes"))


# --- runs -----------------------------------------------------------------------------------

@bp.get("/runs")
def runs():
    status = request.args.get("status") or None
    if status is not None and status not in RUN_STATUS_NAMES:
        abort(404)
    page = db.paginate(services.runs(current_user, status), page=_page_number(),
                       per_page=current_app.config["PER_PAGE"], error_out=False)
    return render_template("tasks/runs.html", page=page, status=status,
                           links=_run_links(page.items))


def _run_links(items: list[Run]) -> dict[int, links.Link]:
    out = {}
    for run in items:  # resolvers answer from their own caches of projects and chart
        if run.link_kind:
            found = links.resolve(current_user, run.link_kind, run.link_id)
            if found is not None:
                out[run.id] = found
    return out


def _run_form_page(form: dict, errors: dict | None = None, status: int = 200):
    choices = services.programmes()
    return render_template("tasks/run_form.html", form=form, errors=errors or {},
                           programmes=choices, kinds=links.kinds(),
                           link_options=_link_options(form.get("link"))), status


@bp.route("/runs/new", methods=["GET", "POST"])
def run_new():
    if request.method == "GET":
        programme_id = _arg_id("programme")
        if programme_id is not None:
            services.get_programme(programme_id)  # 404 for no such programme
        link = request.args.get("link", "").strip()[:40]
        return _run_form_page({"programme_id": str(programme_id or ""), "link": link})
    form = request.form.to_dict()
    other = form.get("link_other", "").strip()
    data = {"programme_id": _int(form.get("programme_id")), "title": form.get("title", ""),
            "link": other or form.get("link") or None, "start_at": utc_from_local(form.get("start_at"))}
    if data["programme_id"] is None:
        return _run_form_page(form, {"programme_id": [_("Choose a programme.")]}, 422)
    try:
        run = services.start_run(current_user, data)
    except DomainError as exc:
        db.session.rollback()
        errors = _errors(exc)
        if other and "link" in errors:
            errors["link_other"] = errors.pop("link")
        return _run_form_page(form, errors, exc.status)
    flash(_("The programme is running; the first stage's holder is told."), "success")
    return redirect(url_for("tasks.run", run_id=run.id))


def _timeline(run: Run, now: datetime) -> dict:
    """Planned and actual bars of each stage on one time axis, in per cent of its width."""
    stages = run.stages
    starts = [run.started_at, *(s.planned_start_at for s in stages if s.planned_start_at),
              *(s.opened_at for s in stages if s.opened_at)]
    ends = [*(s.planned_due_at for s in stages if s.planned_due_at),
            *(s.done_at for s in stages if s.done_at),
            *(s.due_at for s in stages if s.due_at and s.status in ACTIVE)]
    if any(s.status in ACTIVE for s in stages) and run.status == "running":
        ends.append(now)
    t0 = min(starts)
    t1 = max([*ends, t0 + timedelta(hours=1)])
    span = (t1 - t0).total_seconds()

    def pct(moment: datetime) -> float:
        return round(min(max((moment - t0).total_seconds() / span, 0), 1) * 100, 3)

    def bar(begin: datetime | None, end: datetime | None) -> dict | None:
        if begin is None or end is None:
            return None
        x = pct(begin)
        return {"x": x, "w": max(round(pct(end) - x, 3), 0.6), "begin": begin, "end": end}

    rows = []
    for s in stages:
        actual_end = s.done_at or (now if s.status in ACTIVE and run.status == "running" else None)
        if actual_end is None and s.opened_at and s.status == "cancelled":
            actual_end = run.done_at or s.updated_at
        late = bool((s.done_at and s.planned_due_at and s.done_at > s.planned_due_at)
                    or (s.status in ACTIVE and s.due_at and s.due_at < now))
        tone = "late" if late else {"done": "done", "open": "active", "in_progress": "active",
                                    "cancelled": "cancelled"}.get(s.status, "waiting")
        rows.append({"task": s, "planned": bar(s.planned_start_at, s.planned_due_at),
                     "actual": bar(s.opened_at, actual_end), "tone": tone, "late": late})
    ticks = [{"x": pct(moment), "label": label,
              "anchor": "start" if pct(moment) < 4 else ("end" if pct(moment) > 96 else "middle")}
             for moment, label in _ticks(t0, t1)]
    now_x = pct(now) if t0 <= now <= t1 else None
    return {"rows": rows, "ticks": ticks, "now_x": now_x, "start": t0, "end": t1}


TICK_STEPS = [timedelta(hours=h) for h in (1, 2, 3, 6, 12, 24, 48, 168, 336, 720)]


def _ticks(t0: datetime, t1: datetime, most: int = 8) -> list[tuple[datetime, str]]:
    """Round moments of the user's clock between two times (hours or days apart, at most
    `most` of them), each with its label."""
    step = next((s for s in TICK_STEPS if (t1 - t0) / s <= most), TICK_STEPS[-1])
    local = t0.astimezone(zone_of(current_user))
    if step >= timedelta(days=1):
        moment = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        hours = int(step.total_seconds() // 3600)
        moment = local.replace(minute=0, second=0, microsecond=0)
        moment -= timedelta(hours=moment.hour % hours)
    while moment < local:
        moment += step
    out = []
    while moment <= t1:
        daily = step >= timedelta(days=1) or moment.hour == 0 or not out
        out.append((moment, format_datetime(moment, "d MMM" if step >= timedelta(days=1)
                                            else ("d MMM HH:mm" if daily else "HH:mm"))))
        moment += step
    return out


@bp.get("/runs/<int:run_id>")
def run(run_id: int):
    found = services.get_run(current_user, run_id)
    now = utcnow()
    visible = {t.id for t in db.session.scalars(
        select(Task).where(Task.run_id == found.id, services.visible_clause(current_user)))}
    done = sum(1 for s in found.stages if s.status == "done")
    return render_template("tasks/run.html", run=found, timeline=_timeline(found, now),
                           link=services.link_of(current_user, found), visible=visible,
                           done=done, holding=_holding_text,
                           can_cancel=found.status == "running" and (
                               found.started_by_id == current_user.id or is_admin(current_user)))


@bp.post("/runs/<int:run_id>/cancel")
def run_cancel(run_id: int):
    back = url_for("tasks.run", run_id=run_id)
    return _run(lambda: services.cancel_run(current_user, run_id),
                _("The run is cancelled; its open stages are closed."), back, then=back)


# --- projects -------------------------------------------------------------------------------

def _projects_page(form: dict | None = None, errors: dict | None = None, status: int = 200):
    found = services.projects()
    ids = [p.id for p in found]
    run_counts, task_counts = {}, {}
    if ids:
        run_counts = dict(db.session.execute(
            select(Run.link_id, func.count()).where(Run.link_kind == "project",
                                                     Run.link_id.in_(ids))
            .group_by(Run.link_id)).all())
        task_counts = dict(db.session.execute(
            select(Task.link_id, func.count()).where(Task.link_kind == "project",
                                                      Task.link_id.in_(ids),
                                                      Task.status.in_(ACTIVE))
            .group_by(Task.link_id)).all())
    return render_template("tasks/projects.html", projects=found, form=form or {},
                           errors=errors or {}, run_counts=run_counts,
                           task_counts=task_counts), status


@bp.route("/projects", methods=["GET", "POST"])
def projects():
    if request.method == "GET":
        return _projects_page()
    form = request.form.to_dict()
    try:
        project = services.create_project(current_user, {"name": form.get("name", ""),
                                                         "description": form.get("description", "")})
    except DomainError as exc:
        db.session.rollback()
        return _projects_page(form, _errors(exc), exc.status)
    flash(_("The project “%(name)s” is created.", name=project.name), "success")
    return redirect(url_for("tasks.projects") + f"#project-{project.id}")
