"""Rules of tasks and programmes. Every path (page, API, socket, job) calls these.

Work is given down the chart: to oneself, to a subordinate, or to a post in one's scope
(meaning its holder, or the holder from above when it is vacant). Work for someone outside
one's scope is never assigned silently: it becomes a request to the head of their unit, who
accepts (and assigns) or declines with a reason.

Who sees a task: its setter, its assignee and their superiors, the head asked to accept it,
its watchers, the people with a step in it, executives and administrators. Who changes it:
its setter and its assignee (and administrators); anyone else gets 404 or a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, literal, or_, select, union_all, update
from sqlalchemy.orm import joinedload, selectinload

from app.core import attachments, audit, feed, links, markup, notifications
from app.core.clock import utcnow
from app.core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationError
from app.core.models import AuditEvent, User
from app.core.queries import among
from app.core.services import is_admin, load
from app.extensions import db
from app.orgchart import chart as charts
from app.orgchart import services as org
from app.orgchart.models import Post
from app.tasks.models import (
    ACTIVE,
    CLOSED,
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
from app.tasks.schemas import (
    CommentIn,
    DecisionIn,
    ProgrammeIn,
    ProjectIn,
    ReminderIn,
    RunIn,
    StatusIn,
    StepIn,
    StepUpdate,
    TaskFilter,
    TaskIn,
    TaskUpdate,
)

OWNER = "task"  # attachments hang on tasks
DONE_ON_BOARD = timedelta(days=14)  # done work stays on the board this long
BOARD_COLUMN_MAX = 100


def _fail(field: str, message: str) -> ValidationError:
    return ValidationError(message, {field: [message]})


def task_path(task_id: int) -> str:
    return links.path_for("tasks.detail", f"/tasks/{task_id}", task_id=task_id)


def run_path(run_id: int) -> str:
    return links.path_for("tasks.run", f"/tasks/runs/{run_id}", run_id=run_id)


# --- who may see and change what ----------------------------------------------------------

def _directed_ids(actor: User) -> set[int]:
    """The people whose work the actor directs: themselves and everyone below them."""
    return {actor.id, *(u.id for u in charts.load().subordinates_of(actor.id))}


def sees_everything(actor: User) -> bool:
    return org.can_see_all(actor)


def visible_clause(actor: User):
    """A WHERE clause: the tasks the actor may see."""
    if sees_everything(actor):
        return Task.id.is_not(None)
    return or_(
        Task.creator_id == actor.id,
        Task.assignee_id.in_(_directed_ids(actor)),
        Task.requested_of_id == actor.id,
        Task.id.in_(select(Watcher.task_id).where(Watcher.user_id == actor.id)),
        Task.id.in_(select(Step.task_id).where(Step.assignee_id == actor.id)),
    )


def get_task(actor: User, task_id: int, *, lock: bool = False) -> Task:
    """A task the actor may see; 404 otherwise, so nothing leaks."""
    stmt = select(Task).where(Task.id == task_id, visible_clause(actor))
    if lock:
        stmt = stmt.with_for_update(of=Task).execution_options(populate_existing=True)
    task = db.session.scalar(stmt)
    if task is None:
        raise NotFound(_("No such task."))
    return task


def can_edit(actor: User, task: Task) -> bool:
    """The setter and the person doing it change a task (and administrators)."""
    return actor.id in (task.creator_id, task.assignee_id) or is_admin(actor)


def _editable(actor: User, task_id: int) -> Task:
    task = get_task(actor, task_id, lock=True)
    if not can_edit(actor, task):
        raise PermissionDenied(_("Only the person who set this task or the one doing it may "
                                 "change it."))
    return task


def _can_see_id(user: User, task_id: int) -> bool:
    return db.session.scalar(select(Task.id).where(Task.id == task_id, visible_clause(user))) \
        is not None


def _can_attach(user: User, task_id: int) -> bool:
    task = db.session.get(Task, task_id)
    return task is not None and _can_see_id(user, task_id) and (
        can_edit(user, task) or user.id in {s.assignee_id for s in task.steps})


attachments.register_owner(OWNER, _can_see_id, _can_attach)


def resolve_task_link(actor: User, task_id: int) -> tuple[str, str] | None:
    task = db.session.scalar(select(Task).where(Task.id == task_id, visible_clause(actor)))
    return (task.title, task_path(task.id)) if task else None


def resolve_project(actor: User, project_id: int) -> tuple[str, str] | None:
    project = db.session.get(Project, project_id)
    if project is None or project.archived_at is not None:
        return None
    return project.name, links.path_for("tasks.projects", "/tasks/projects")


# --- placing work on the chart ------------------------------------------------------------

@dataclass
class Placement:
    assignee_id: int | None
    post_id: int | None
    requested_of_id: int | None  # set when the work must be accepted by a head first

    @property
    def status(self) -> str:
        return "requested" if self.requested_of_id else "open"


def _in_scope(actor: User, post: Post) -> bool:
    """Is the post the actor's own or below one of theirs?"""
    if is_admin(actor):
        return True
    chart = charts.load()
    mine = chart.effective_posts(actor.id)
    return any(p.id == post.id for p in mine) or any(
        post.id == below.id for p in mine for below in chart.posts_below(p))


def _head_for(post: Post) -> User | None:
    """Who decides on work for a post: the holder of its unit's head post (the head above,
    for a head post), held from above when vacant."""
    chart = charts.load()
    head = chart.head.get(post.unit_id)
    if head is None or head.id == post.id:
        head = chart.superior_post(post)
    if head is None:
        head = post  # the top of the chart decides for itself
    users = chart.holding(head).users
    return users[0] if users else None


def place(actor: User, token: str | None) -> Placement:
    """Where work goes: "user:5", "post:7", or nobody named (oneself)."""
    token = (token or "").strip()
    if not token or token == f"user:{actor.id}":
        return Placement(actor.id, None, None)
    kind, _sep, raw = token.partition(":")
    chart = charts.load()
    if not raw.isdigit() or len(raw) > 9 or kind not in ("user", "post"):
        raise _fail("assignee", _("Unknown assignee: %(token)s.", token=token[:40]))
    if kind == "user":
        user = db.session.get(User, int(raw))
        if user is None or not user.is_active:
            raise _fail("assignee", _("Unknown assignee: %(token)s.", token=token[:40]))
        if user.id in _directed_ids(actor) or is_admin(actor):
            return Placement(user.id, None, None)
        posts = chart.own_posts(user.id) or chart.effective_posts(user.id)
        if not posts:
            raise _fail("assignee", _("%(name)s holds no post, so no head can accept the work.",
                                      name=user.name))
        head = _head_for(posts[0])
        if head is None:
            raise _fail("assignee", _("Nobody heads %(name)s's unit to accept the work.",
                                      name=user.name))
        return Placement(user.id, None, head.id)
    post = chart.posts.get(int(raw))
    if post is None:
        raise _fail("assignee", _("Unknown assignee: %(token)s.", token=token[:40]))
    holders = [u.id for u in chart.holding(post).users]
    # One's own post (shared with peers) means oneself, never a peer outside one's scope.
    holder = actor.id if actor.id in holders else (holders[0] if holders else None)
    if _in_scope(actor, post):
        if holder is None:
            raise _fail("assignee", _("The post %(post)s has no holder and nobody holds it "
                                      "from above.", post=post.title))
        return Placement(holder, post.id, None)
    head = _head_for(post)
    if head is None:
        raise _fail("assignee", _("Nobody heads the unit of %(post)s to accept the work.",
                                  post=post.title))
    return Placement(holder, post.id, head.id)


def _users(ids: Iterable[int], field: str) -> list[User]:
    ids = list(dict.fromkeys(ids))
    found = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))} if ids \
        else {}
    for uid in ids:
        if uid not in found or not found[uid].is_active:
            raise _fail(field, _("Unknown person: %(id)s.", id=uid))
    return [found[uid] for uid in ids]


def _check_times(start_at: datetime | None, due_at: datetime | None) -> None:
    if start_at and due_at and due_at < start_at:
        raise _fail("due_at", _("The due time is before the start."))


# --- events: live pages, notifications ----------------------------------------------------

def participants(task: Task) -> set[int]:
    people = {task.creator_id, task.assignee_id, task.requested_of_id,
              *(w.user_id for w in task.watchers), *(s.assignee_id for s in task.steps)}
    people.discard(None)
    return people


def wire(task: Task) -> dict:
    """What a live page needs to place a task: sent with every change."""
    return {"id": task.id, "title": task.title, "status": task.status,
            "priority": task.priority, "assignee_id": task.assignee_id,
            "creator_id": task.creator_id, "run_id": task.run_id,
            "due_at": task.due_at.isoformat() if task.due_at else None}


def _changed(task: Task, also: Iterable[int] = ()) -> None:
    task.updated_at = utcnow()
    feed.publish_many(sorted(participants(task) | set(also)), "task.changed", wire(task))


def tell(user_id: int | None, actor: User | None, title, task: Task, kind: str = "task") -> None:
    """A notification in the recipient's language (`title` is a lazy string); nobody is told
    of what they did themselves."""
    if user_id is not None and (actor is None or user_id != actor.id):
        notifications.notify(user_id, kind, title, task.title, task_path(task.id))


def _snapshot(task: Task) -> dict:
    return {"title": task.title, "status": task.status, "priority": task.priority,
            "assignee_id": task.assignee_id, "post_id": task.post_id,
            "start_at": task.start_at.isoformat() if task.start_at else None,
            "due_at": task.due_at.isoformat() if task.due_at else None,
            "link": f"{task.link_kind}:{task.link_id}" if task.link_kind else None}


def _audit(actor: User | None, action: str, task: Task, before: dict | None = None,
           after: dict | None = None) -> None:
    audit.record(actor, action, "task", task.id, before=before, after=after)


# --- tasks --------------------------------------------------------------------------------

def create_task(actor: User, data: Mapping) -> Task:
    values = load(TaskIn(), data)
    _check_times(values["start_at"], values["due_at"])
    spot = place(actor, values["assignee"])
    link_kind, link_id = links.parse(actor, values["link"])
    watchers = _users(values["watchers"], "watchers")
    step_people = _users([s["assignee_id"] for s in values["steps"] if s["assignee_id"]], "steps")
    now = utcnow()
    task = Task(title=values["title"].strip(), description=values["description"],
                description_html=markup.render(values["description"]), creator_id=actor.id,
                assignee_id=spot.assignee_id, post_id=spot.post_id, status=spot.status,
                requested_of_id=spot.requested_of_id, priority=values["priority"],
                start_at=values["start_at"], due_at=values["due_at"], link_kind=link_kind,
                link_id=link_id, created_at=now, updated_at=now,
                opened_at=now if spot.status == "open" else None)
    if not task.title:
        raise _fail("title", _("A title is required."))
    task.watchers = [Watcher(user_id=u.id) for u in watchers]
    task.steps = [_new_step(i, s) for i, s in enumerate(values["steps"], start=1)]
    del step_people
    db.session.add(task)
    db.session.flush()
    _audit(actor, "task.create", task, after=_snapshot(task))
    if spot.requested_of_id:
        tell(spot.requested_of_id, actor,
              _l("%(name)s asks your unit to take on a task", name=actor.name), task)
    else:
        tell(task.assignee_id, actor, _l("New task from %(name)s", name=actor.name), task)
    _changed(task)
    return task


def _new_step(position: int, values: Mapping, field: str = "steps") -> Step:
    if not values["title"].strip():
        raise _fail(field, _("Step %(n)d needs a title.", n=position))
    return Step(position=position, title=values["title"].strip(),
                assignee_id=values.get("assignee_id"), due_at=values.get("due_at"),
                parallel=values.get("parallel", False), required=values.get("required", True))


def update_task(actor: User, task_id: int, data: Mapping) -> Task:
    values = load(TaskUpdate(), data, partial=True)
    task = _editable(actor, task_id)
    if task.status in CLOSED:
        raise Conflict(_("This task is closed; reopen it to change it."))
    before = _snapshot(task)
    told: set[int] = set()
    if "title" in values:
        if not values["title"].strip():
            raise _fail("title", _("A title is required."))
        task.title = values["title"].strip()
    if "description" in values:
        task.description = values["description"]
        task.description_html = markup.render(values["description"])
    if "priority" in values:
        task.priority = values["priority"]
    start_at = values.get("start_at", task.start_at)
    due_at = values.get("due_at", task.due_at)
    _check_times(start_at, due_at)
    if due_at != task.due_at:
        task.escalated_at = None  # a new due time is a new promise
    task.start_at, task.due_at = start_at, due_at
    if "link" in values:
        task.link_kind, task.link_id = links.parse(actor, values["link"])
    if "watchers" in values:
        people = _users(values["watchers"], "watchers")
        told |= {w.user_id for w in task.watchers}  # who stops watching hears of it once
        task.watchers = [Watcher(user_id=u.id) for u in people]
    if "assignee" in values:
        if task.is_stage:
            raise Conflict(_("A stage goes to its post's holder; it cannot be given to "
                             "someone else."))
        spot = place(actor, values["assignee"])
        asked = task.requested_of_id if task.status == "requested" else None
        if (spot.assignee_id, spot.post_id, spot.requested_of_id) != (
                task.assignee_id, task.post_id, asked):  # the same again asks nobody again
            told.add(task.assignee_id) if task.assignee_id else None
            task.assignee_id, task.post_id = spot.assignee_id, spot.post_id
            task.requested_of_id = spot.requested_of_id
            if spot.requested_of_id:
                task.status = "requested"
                tell(spot.requested_of_id, actor,
                      _l("%(name)s asks your unit to take on a task", name=actor.name), task)
            else:
                if task.status == "requested":  # taken back within one's scope: no head asked
                    task.status, task.opened_at = "open", utcnow()
                tell(task.assignee_id, actor, _l("New task from %(name)s", name=actor.name), task)
    db.session.flush()
    after = _snapshot(task)
    if after != before or "description" in values:
        _audit(actor, "task.update", task, before=before, after=after)
    _changed(task, told)
    return task


def set_status(actor: User, task_id: int, data: Mapping) -> Task:
    action = load(StatusIn(), data)["action"]
    task = _editable(actor, task_id)
    before = task.status
    now = utcnow()
    if action == "start":
        if task.status != "open":
            raise Conflict(_("Only open work can be started."))
        task.status = "in_progress"
    elif action == "done":
        if task.status not in ACTIVE:
            raise Conflict(_("Only open work can be done."))
        _check_closable(actor, task)
        task.status, task.done_at, task.done_by_id = "done", now, actor.id
    elif action == "reopen":
        if task.status != "done":
            raise Conflict(_("Only done work can be reopened."))
        if task.is_stage and any(s.status != "waiting" for s in _followers(task)):
            raise Conflict(_("The stages after this one have begun; it cannot be reopened."))
        task.status, task.done_at, task.done_by_id = "open", None, None
        if task.is_stage and task.run.status == "done":
            task.run.status, task.run.done_at = "running", None
    else:  # cancel
        if task.is_stage:
            raise Conflict(_("A stage ends with its programme run; cancel the run instead."))
        if actor.id != task.creator_id and not is_admin(actor):
            raise PermissionDenied(_("Only the person who set this task may cancel it."))
        if task.status in CLOSED:
            raise Conflict(_("This task is already closed."))
        task.status = "cancelled"
    db.session.flush()
    _audit(actor, f"task.{action}", task, before={"status": before}, after={"status": task.status})
    if action == "done":
        tell(task.creator_id, actor, _l("%(name)s has done a task", name=actor.name), task)
        if task.is_stage:
            _advance(actor, task.run, now)
    _changed(task)
    return task


def _check_closable(actor: User, task: Task) -> None:
    open_steps = [s.title for s in task.steps if s.required and s.done_at is None]
    if open_steps:
        raise Conflict(_("Required steps are still open: %(steps)s.",
                         steps=", ".join(open_steps[:5])))
    if task.needs_attachment and not attachments.list_for(actor, OWNER, task.id):
        raise Conflict(_("This stage needs a file attached (for example a signed act) before "
                         "it can be closed."))


def decide(actor: User, task_id: int, data: Mapping) -> Task:
    """The head asked to take on work accepts it (giving it to someone they direct) or
    declines it with a reason."""
    values = load(DecisionIn(), data)
    task = get_task(actor, task_id, lock=True)
    if task.status != "requested":
        raise Conflict(_("This request has already been decided."))
    if actor.id != task.requested_of_id and not is_admin(actor):
        raise PermissionDenied(_("Only the head asked may accept or decline this request."))
    before = _snapshot(task)
    if values["accept"]:
        assignee_id = values["assignee_id"] or task.assignee_id
        if assignee_id is None:
            raise _fail("assignee_id", _("Choose who will do it."))
        if assignee_id not in _directed_ids(actor) and not is_admin(actor):
            raise _fail("assignee_id", _("You may give the work only to yourself or to "
                                         "someone below you on the chart."))
        _users([assignee_id], "assignee_id")
        if task.post_id and assignee_id != task.assignee_id:
            task.post_id = None  # given to a named person, no longer to whoever holds the post
        task.assignee_id, task.status, task.opened_at = assignee_id, "open", utcnow()
        tell(task.creator_id, actor, _l("%(name)s accepted your request", name=actor.name), task)
        tell(task.assignee_id, actor, _l("New task from %(name)s", name=actor.name), task)
    else:
        reason = values["reason"].strip()
        if not reason:
            raise _fail("reason", _("Say why the request is declined."))
        task.status, task.decline_reason = "declined", reason
        tell(task.creator_id, actor, _l("%(name)s declined your request", name=actor.name), task)
    db.session.flush()
    _audit(actor, "task.accept" if values["accept"] else "task.decline", task, before=before,
           after={**_snapshot(task), "reason": task.decline_reason})
    _changed(task)
    return task


# --- steps --------------------------------------------------------------------------------

def _step(task: Task, step_id: int) -> Step:
    for step in task.steps:
        if step.id == step_id:
            return step
    raise NotFound(_("No such step."))


def add_step(actor: User, task_id: int, data: Mapping) -> Step:
    values = load(StepIn(), data)
    task = _editable(actor, task_id)
    if task.status in CLOSED:
        raise Conflict(_("This task is closed; reopen it to change it."))
    if values["assignee_id"]:
        _users([values["assignee_id"]], "assignee_id")
    if len(task.steps) >= 100:
        raise _fail("title", _("A task has at most 100 steps."))
    step = _new_step(len(task.steps) + 1, values, "title")
    task.steps.append(step)
    db.session.flush()
    _audit(actor, "task.step_add", task, after={"step": step.title})
    _changed(task)
    return step


def update_step(actor: User, task_id: int, step_id: int, data: Mapping) -> Step:
    """Change a step, or check it done / not done. Checking is open to the step's assignee
    too; a step is checked only after the one before it, unless it is parallel."""
    values = load(StepUpdate(), data, partial=True)
    task = get_task(actor, task_id, lock=True)
    step = _step(task, step_id)
    editing = set(values) - {"done"}
    if not can_edit(actor, task) and (editing or step.assignee_id != actor.id):
        raise PermissionDenied(_("Only the person who set this task, the one doing it or the "
                                 "step's assignee may change it."))
    if editing:
        if task.status in CLOSED:
            raise Conflict(_("This task is closed; reopen it to change it."))
        if "title" in values and not values["title"].strip():
            raise _fail("title", _("A title is required."))
        if values.get("assignee_id"):
            _users([values["assignee_id"]], "assignee_id")
        for name in editing:
            setattr(step, name, values[name].strip() if name == "title" else values[name])
    if "done" in values and values["done"] != (step.done_at is not None):
        _check_step(task, step, values["done"])
        step.done_at, step.done_by_id = (utcnow(), actor.id) if values["done"] else (None, None)
        if values["done"] and task.status == "open":
            task.status = "in_progress"  # the first step checked starts the work
    if not (db.session.is_modified(step) or db.session.is_modified(task)):
        return step  # the same values again (a repeated check): nothing recorded, nobody told
    db.session.flush()
    _audit(actor, "task.step", task, after={"step": step.title, **{
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}})
    _changed(task)
    return step


def _check_step(task: Task, step: Step, done: bool) -> None:
    if task.status not in ACTIVE:
        raise Conflict(_("Steps are checked while the work is open."))
    index = task.steps.index(step)
    # A sequential step follows every required step before it: a parallel one goes alongside
    # the step before it, not instead of it; an optional one may be skipped.
    earlier = [n for n, s in enumerate(task.steps[:index], start=1)
               if s.done_at is None and s.required]
    if done and not step.parallel and earlier:
        raise Conflict(_("Step %(n)s comes first: “%(title)s”.", n=earlier[-1],
                         title=task.steps[earlier[-1] - 1].title))
    if not done and any(not s.parallel and s.done_at is not None
                        for s in task.steps[index + 1:]):
        raise Conflict(_("The step after this one is done; uncheck it first."))


def delete_step(actor: User, task_id: int, step_id: int) -> None:
    task = _editable(actor, task_id)
    step = _step(task, step_id)
    if task.status in CLOSED:
        raise Conflict(_("This task is closed; reopen it to change it."))
    task.steps.remove(step)
    for position, other in enumerate(task.steps, start=1):
        other.position = position
    db.session.flush()
    _audit(actor, "task.step_delete", task, before={"step": step.title})
    _changed(task)


# --- comments, watchers, reminders --------------------------------------------------------

def add_comment(actor: User, task_id: int, data: Mapping) -> Comment:
    """Anyone who may see a task may comment; everyone watching sees it live."""
    values = load(CommentIn(), data)
    task = get_task(actor, task_id)
    body = values["body"].strip()
    if not body:
        raise _fail("body", _("Write something first."))
    comment = Comment(task_id=task.id, author_id=actor.id, body=body, body_html=markup.render(body),
                      created_at=utcnow())
    db.session.add(comment)
    db.session.flush()
    _audit(actor, "task.comment", task, after={"comment_id": comment.id})
    feed.publish_many(sorted(participants(task)), "task.comment", {
        "task_id": task.id, "id": comment.id, "author_id": actor.id, "author": actor.name,
        "html": comment.body_html, "created_at": comment.created_at.isoformat()})
    for uid in sorted(participants(task)):
        tell(uid, actor, _l("%(name)s commented", name=actor.name), task, "task_comment")
    return comment


def comments_of(actor: User, task_id: int) -> list[Comment]:
    get_task(actor, task_id)
    return list(db.session.scalars(select(Comment).options(joinedload(Comment.author))
                                   .where(Comment.task_id == task_id).order_by(Comment.id)))


def watch(actor: User, task_id: int, on: bool) -> Task:
    """Anyone who may see a task may follow it."""
    task = get_task(actor, task_id)
    mine = next((w for w in task.watchers if w.user_id == actor.id), None)
    if on and mine is None:
        task.watchers.append(Watcher(user_id=actor.id))
    elif not on and mine is not None:
        task.watchers.remove(mine)
    db.session.flush()
    feed.publish(actor.id, "task.changed", wire(task))
    return task


def add_reminder(actor: User, task_id: int, data: Mapping) -> Reminder:
    """A reminder for oneself about a task one may see, at a time still to come."""
    values = load(ReminderIn(), data)
    task = get_task(actor, task_id)
    if values["remind_at"] <= utcnow():
        raise _fail("remind_at", _("The reminder time has already passed."))
    reminder = Reminder(task_id=task.id, user_id=actor.id, remind_at=values["remind_at"],
                        note=values["note"].strip(), created_at=utcnow())
    db.session.add(reminder)
    db.session.flush()
    _audit(actor, "task.reminder", task, after={"remind_at": reminder.remind_at.isoformat()})
    return reminder


def reminders_of(actor: User, task_id: int) -> list[Reminder]:
    get_task(actor, task_id)
    return list(db.session.scalars(select(Reminder).where(
        Reminder.task_id == task_id, Reminder.user_id == actor.id).order_by(Reminder.remind_at)))


def delete_reminder(actor: User, reminder_id: int) -> None:
    reminder = db.session.get(Reminder, reminder_id)
    if reminder is None or reminder.user_id != actor.id:
        raise NotFound(_("No such reminder."))
    db.session.delete(reminder)
    db.session.flush()


def history(actor: User, task_id: int) -> list[AuditEvent]:
    """Every change of a task, oldest first, from the audit log."""
    get_task(actor, task_id)
    return list(db.session.scalars(audit.query({"entity_type": "task", "entity_id": task_id})
                                   .order_by(None).order_by(AuditEvent.at, AuditEvent.id)))


def link_of(actor: User, task: Task | Run) -> links.Link | None:
    return links.resolve(actor, task.link_kind, task.link_id)


# --- views of work ------------------------------------------------------------------------

def _today(actor: User, now: datetime) -> tuple[datetime, datetime]:
    """Today in the actor's time zone, as UTC bounds."""
    try:
        zone = ZoneInfo(actor.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(now.tzinfo), (start + timedelta(days=1)).astimezone(now.tzinfo)


def _listing(stmt):
    return stmt.options(joinedload(Task.assignee), joinedload(Task.creator))


@dataclass
class Day:
    requests: list[Task]
    overdue: list[Task]
    today: list[Task]
    upcoming: list[Task]
    undated: list[Task]
    steps: list[Step]


def my_day(actor: User, now: datetime | None = None, limit: int = 200) -> Day:
    """The actor's own work: requests to decide, then overdue, today, upcoming, undated."""
    now = now or utcnow()
    start, end = _today(actor, now)
    rows = db.session.scalars(_listing(
        select(Task).where(Task.assignee_id == actor.id, Task.status.in_(ACTIVE))
        .order_by(Task.due_at.is_(None), Task.due_at, Task.id).limit(limit * 4))).all()
    requests = db.session.scalars(_listing(
        select(Task).where(Task.requested_of_id == actor.id, Task.status == "requested")
        .order_by(Task.created_at).limit(limit))).all()
    steps = db.session.scalars(
        select(Step).options(joinedload(Step.task)).join(Task)
        .where(Step.assignee_id == actor.id, Step.done_at.is_(None), Task.status.in_(ACTIVE),
               Task.assignee_id != actor.id)
        .order_by(Step.due_at.is_(None), Step.due_at).limit(limit)).all()
    return Day(
        requests=list(requests),
        overdue=[t for t in rows if t.due_at and t.due_at < now][:limit],
        today=[t for t in rows if t.due_at and now <= t.due_at < end][:limit],
        upcoming=[t for t in rows if t.due_at and t.due_at >= end][:limit],
        undated=[t for t in rows if t.due_at is None][:limit],
        steps=list(steps),
    )


def set_by(actor: User, status: str | None = None):
    """A select() of the tasks the actor set (not programme stages), newest first."""
    stmt = _listing(select(Task).where(Task.creator_id == actor.id, Task.run_id.is_(None)))
    if status:
        stmt = stmt.where(Task.status == status)
    return stmt.order_by(Task.created_at.desc(), Task.id.desc())


BOARD_COLUMNS = ("requested", "open", "in_progress", "done")


def board(actor: User, person_id: int | None = None, now: datetime | None = None,
          limit: int = BOARD_COLUMN_MAX) -> dict[str, dict]:
    """The team board of the actor's scope (themselves and everyone below), by status:
    {status: {"tasks": [...], "total": n}}; done work of the last two weeks."""
    now = now or utcnow()
    people = _directed_ids(actor)
    if person_id is not None:
        if person_id not in people:
            raise NotFound(_("No such person in your team."))
        people = {person_id}
    scope = Task.assignee_id.in_(people)
    since = now - DONE_ON_BOARD
    waiting = [s for s in BOARD_COLUMNS if s != "done"]
    # Two counts, each read from an index alone (ix_task_assignee_status_due, ix_task_done).
    totals = dict(db.session.execute(union_all(
        select(Task.status, func.count()).where(scope, Task.status.in_(waiting))
        .group_by(Task.status),
        select(literal("done"), func.count()).where(scope, Task.status == "done",
                                                    Task.done_at >= since))).all())
    out = {}
    for status in BOARD_COLUMNS:
        if status == "done":
            where, order = (Task.done_at >= since,), (Task.done_at.desc(), Task.id.desc())
        else:  # by due time, undated last; ix_task_status_due gives this order for big scopes
            where, order = (), (Task.due_at.asc().nulls_last(), Task.id)
        tasks = db.session.scalars(_listing(
            select(Task).where(scope, Task.status == status, *where).order_by(*order)
            .limit(limit))).all()
        out[status] = {"tasks": list(tasks), "total": totals.get(status, 0)}
    return out


def team_of(actor: User) -> list[User]:
    chart = charts.load()
    return [actor, *chart.subordinates_of(actor.id)]


def search(actor: User, data: Mapping):
    """A select() of the tasks the actor may see, filtered; the caller paginates."""
    values = load(TaskFilter(), data)
    stmt = _listing(select(Task).where(visible_clause(actor)))
    if values["q"].strip():
        words = values["q"].strip().lower()
        pattern = "%" + words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(func.lower(Task.title).like(pattern, escape="\\"),
                              func.lower(Task.description).like(pattern, escape="\\")))
    if values["status"]:
        statuses = [s for s in values["status"].split(",") if s]
        stmt = stmt.where(Task.status.in_(statuses))
    for name in ("assignee_id", "creator_id", "priority", "run_id"):
        if values[name]:
            stmt = stmt.where(getattr(Task, name) == values[name])
    if values["link"]:
        kind, _sep, raw = values["link"].partition(":")
        stmt = stmt.where(Task.link_kind == kind, Task.link_id == (int(raw) if raw.isdigit()
                                                                   else -1))
    if values["due_from"]:
        stmt = stmt.where(Task.due_at >= values["due_from"])
    if values["due_to"]:
        stmt = stmt.where(Task.due_at < values["due_to"])
    if values["overdue"]:
        stmt = stmt.where(Task.status.in_(ACTIVE), Task.due_at < utcnow())
    return stmt.order_by(Task.created_at.desc(), Task.id.desc())


# --- programmes ---------------------------------------------------------------------------

def can_design(actor: User) -> bool:
    """Administrators, chart editors and heads (holders of a head post) write programmes."""
    return org.can_edit_chart(actor) or any(
        p.is_head for p in charts.load().effective_posts(actor.id))


def _require_designer(actor: User) -> None:
    if not can_design(actor):
        raise PermissionDenied(_("Only heads, chart editors and administrators write "
                                 "programmes."))


def _stages(values: list[Mapping]) -> list[StageTemplate]:
    """Stage rows from the form, checked: posts exist, keys are unique, every stage it
    waits for exists, and no stage waits, through others, for itself."""
    if not values:
        raise _fail("stages", _("A programme needs at least one stage."))
    chart = charts.load()
    keys = [v["key"] or f"s{i}" for i, v in enumerate(values, start=1)]
    if len(set(keys)) != len(keys):
        raise _fail("stages", _("Two stages have the same key."))
    stages = []
    for i, (v, key) in enumerate(zip(values, keys, strict=True)):
        if v["post_id"] not in chart.posts:
            raise _fail("stages", _("Stage %(n)s: no such post.", n=i + 1))
        after = list(dict.fromkeys(v["after"])) if v["after"] is not None else keys[max(0, i - 1):i]
        unknown = [k for k in after if k not in keys or k == key]
        if unknown:
            raise _fail("stages", _("Stage %(n)s waits for an unknown stage: %(key)s.", n=i + 1,
                                    key=unknown[0]))
        stages.append(StageTemplate(position=i + 1, key=key, title=v["title"].strip(),
                                    post_id=v["post_id"], instructions=v["instructions"],
                                    duration_hours=v["duration_hours"],
                                    checklist=[c.strip() for c in v["checklist"] if c.strip()],
                                    needs_attachment=v["needs_attachment"], after=after))
    _order(stages)
    return stages


def _order(stages) -> list:
    """Stages (or stage tasks) in an order where each comes after those it waits for;
    a cycle is an error."""
    key_of = {s: (s.key if isinstance(s, StageTemplate) else s.stage_key) for s in stages}
    waits = {s: list(s.after if isinstance(s, StageTemplate) else (s.stage_after or []))
             for s in stages}
    done: list = []
    placed: set[str] = set()
    pending = list(stages)
    while pending:
        ready = [s for s in pending if all(k in placed for k in waits[s])]
        if not ready:
            names = ", ".join(s.title for s in pending[:4])
            raise _fail("stages", _("The stages wait for each other in a circle: %(names)s.",
                                    names=names))
        for s in ready:
            done.append(s)
            placed.add(key_of[s])
            pending.remove(s)
    return done


def _stage_values(stage: StageTemplate) -> tuple:
    return (stage.key, stage.title, stage.post_id, stage.instructions, stage.duration_hours,
            list(stage.checklist), stage.needs_attachment, list(stage.after))


def _check_pipeline(actor: User, pipeline_id: int | None) -> None:
    if pipeline_id is not None and links.resolve(actor, "pipeline", pipeline_id) is None:
        raise _fail("won_pipeline_id", _("No such pipeline."))


def create_programme(actor: User, data: Mapping) -> Programme:
    _require_designer(actor)
    values = load(ProgrammeIn(), data)
    stages = _stages(values["stages"])
    _check_pipeline(actor, values["won_pipeline_id"])
    programme = Programme(theme=values["theme"].strip(), name=values["name"].strip(),
                          description=values["description"], created_by_id=actor.id,
                          created_at=utcnow(), start_on_deal_won=values["start_on_deal_won"],
                          won_pipeline_id=values["won_pipeline_id"])
    programme.versions = [ProgrammeVersion(number=1, created_by_id=actor.id, stages=stages,
                                           created_at=utcnow())]
    db.session.add(programme)
    db.session.flush()
    audit.record(actor, "programme.create", "programme", programme.id,
                 after={"name": programme.name, "stages": len(stages)})
    return programme


def update_programme(actor: User, programme_id: int, data: Mapping) -> Programme:
    """Changing the stages makes a new version; runs already started keep theirs."""
    _require_designer(actor)
    values = load(ProgrammeIn(), data)
    programme = get_programme(programme_id)
    if programme.archived_at is not None:
        raise Conflict(_("This programme is archived."))
    stages = _stages(values["stages"])
    _check_pipeline(actor, values["won_pipeline_id"])
    programme.theme, programme.name = values["theme"].strip(), values["name"].strip()
    programme.description = values["description"]
    programme.start_on_deal_won = values["start_on_deal_won"]
    programme.won_pipeline_id = values["won_pipeline_id"]
    current = programme.current
    if [_stage_values(s) for s in stages] != [_stage_values(s) for s in current.stages]:
        programme.versions.append(ProgrammeVersion(number=current.number + 1,
                                                   created_by_id=actor.id, stages=stages,
                                                   created_at=utcnow()))
    db.session.flush()
    audit.record(actor, "programme.update", "programme", programme.id,
                 after={"name": programme.name, "version": programme.current.number})
    return programme


def archive_programme(actor: User, programme_id: int) -> Programme:
    _require_designer(actor)
    programme = get_programme(programme_id)
    if programme.archived_at is not None:
        return programme  # archived already: nothing more to record
    programme.archived_at = utcnow()
    audit.record(actor, "programme.archive", "programme", programme.id)
    return programme


def get_programme(programme_id: int) -> Programme:
    programme = db.session.scalar(select(Programme).options(
        selectinload(Programme.versions).selectinload(ProgrammeVersion.stages))
        .where(Programme.id == programme_id))
    if programme is None:
        raise NotFound(_("No such programme."))
    return programme


def programmes(include_archived: bool = False) -> list[Programme]:
    """Every programme, by theme; everyone may read them (they are how the company works)."""
    stmt = select(Programme).options(
        selectinload(Programme.versions).selectinload(ProgrammeVersion.stages))
    if not include_archived:
        stmt = stmt.where(Programme.archived_at.is_(None))
    return list(db.session.scalars(stmt.order_by(Programme.theme, Programme.name)))


# --- runs ---------------------------------------------------------------------------------

def start_run(actor: User, data: Mapping) -> Run:
    """Run the current version of a programme for a client, deal or project: one task per
    stage, planned from the start time; the stages that wait for nothing open at once."""
    values = load(RunIn(), data)
    if not charts.load().effective_posts(actor.id) and not is_admin(actor):
        raise PermissionDenied(_("Only people holding a post start programmes."))
    programme = get_programme(values["programme_id"])
    if programme.archived_at is not None:
        raise Conflict(_("This programme is archived."))
    version = programme.current
    link_kind, link_id = links.parse(actor, values["link"])
    link = links.resolve(actor, link_kind, link_id)
    chart = charts.load()
    for stage in version.stages:
        if stage.after:
            continue
        post = chart.posts.get(stage.post_id)
        if post is None or not chart.holding(post).users:
            title = post.title if post else str(stage.post_id)
            raise _fail("programme_id", _("The first stage's post %(post)s has no holder and "
                                          "nobody holds it from above.", post=title))
    now = utcnow()
    start = values["start_at"] or now
    run = Run(version=version, title=(values["title"].strip() or (
        f"{programme.name}: {link.title}" if link else programme.name))[:300],
        link_kind=link_kind, link_id=link_id, started_by_id=actor.id, started_at=now)
    planned: dict[str, datetime] = {}
    tasks = []
    for stage in _order(version.stages):
        begin = max([planned[k] for k in stage.after], default=start)
        planned[stage.key] = begin + timedelta(hours=stage.duration_hours)
        tasks.append(Task(
            title=stage.title, description=stage.instructions,
            description_html=markup.render(stage.instructions), creator_id=actor.id,
            post_id=stage.post_id, status="waiting", link_kind=link_kind, link_id=link_id,
            stage_key=stage.key, stage_position=stage.position, stage_after=list(stage.after),
            duration_hours=stage.duration_hours, planned_start_at=begin,
            planned_due_at=planned[stage.key], needs_attachment=stage.needs_attachment,
            created_at=now, updated_at=now,
            steps=[Step(position=i, title=item, parallel=True, required=True)
                   for i, item in enumerate(stage.checklist, start=1)]))
    run.stages = sorted(tasks, key=lambda t: t.stage_position)
    db.session.add(run)
    db.session.flush()
    audit.record(actor, "run.start", "run", run.id,
                 after={"programme": programme.name, "version": version.number,
                        "link": f"{link_kind}:{link_id}" if link_kind else None})
    _advance(actor, run, now)
    return run


def _followers(stage: Task) -> list[Task]:
    return [s for s in stage.run.stages if stage.stage_key in (s.stage_after or [])]


def _advance(actor: User | None, run: Run, now: datetime) -> list[Task]:
    """Open every waiting stage whose earlier stages are done; close the run when all are.
    A stage goes to its post's holder now (from above when vacant)."""
    chart = charts.load()
    done = {s.stage_key for s in run.stages if s.status == "done"}
    opened = []
    for stage in run.stages:
        if stage.status != "waiting" or not all(k in done for k in stage.stage_after or []):
            continue
        post = chart.posts.get(stage.post_id)
        holders = chart.holding(post).users if post else ()
        stage.assignee_id = holders[0].id if holders else None
        stage.status, stage.opened_at, stage.start_at = "open", now, now
        stage.due_at = now + timedelta(hours=stage.duration_hours or 24)
        opened.append(stage)
    db.session.flush()
    for stage in opened:
        _audit(actor, "stage.open", stage, after=_snapshot(stage))
        if stage.assignee_id is None:
            tell(run.started_by_id, None, _l("A stage has nobody to do it"), stage)
        else:
            tell(stage.assignee_id, None, _l("A programme stage is yours: %(run)s",
                                             run=run.title), stage)
        _changed(stage)
    if all(s.status == "done" for s in run.stages) and run.status == "running":
        run.status, run.done_at = "done", now
        audit.record(actor, "run.done", "run", run.id)
        notifications.notify(run.started_by_id, "run", _l("Programme run finished"), run.title,
                             run_path(run.id))
    return opened


def get_run(actor: User, run_id: int) -> Run:
    run = db.session.scalar(select(Run).options(
        selectinload(Run.stages).selectinload(Task.assignee),
        selectinload(Run.stages).selectinload(Task.steps),
        joinedload(Run.version).joinedload(ProgrammeVersion.programme),
    ).where(Run.id == run_id, run_visible_clause(actor)))
    if run is None:
        raise NotFound(_("No such programme run."))
    return run


def run_visible_clause(actor: User):
    if sees_everything(actor):
        return Run.id.is_not(None)
    return or_(Run.started_by_id == actor.id,
               Run.id.in_(select(Task.run_id).where(Task.run_id.is_not(None),
                                                    visible_clause(actor))))


def runs(actor: User, status: str | None = None):
    """A select() of the runs the actor may see, newest first."""
    stmt = (select(Run).options(selectinload(Run.stages),
                                joinedload(Run.version).joinedload(ProgrammeVersion.programme),
                                joinedload(Run.started_by))
            .where(run_visible_clause(actor)))
    if status:
        stmt = stmt.where(Run.status == status)
    return stmt.order_by(Run.started_at.desc(), Run.id.desc())


def cancel_run(actor: User, run_id: int) -> Run:
    run = get_run(actor, run_id)
    if actor.id != run.started_by_id and not is_admin(actor):
        raise PermissionDenied(_("Only the person who started this run may cancel it."))
    if run.status != "running":
        raise Conflict(_("This run has already ended."))
    run.status, run.done_at = "cancelled", utcnow()
    for stage in run.stages:
        if stage.status not in CLOSED:
            stage.status = "cancelled"
            _changed(stage)
    audit.record(actor, "run.cancel", "run", run.id)
    return run


# --- projects -----------------------------------------------------------------------------

def create_project(actor: User, data: Mapping) -> Project:
    values = load(ProjectIn(), data)
    project = Project(name=values["name"].strip(), description=values["description"],
                      owner_id=actor.id, created_at=utcnow())
    if not project.name:
        raise _fail("name", _("A name is required."))
    db.session.add(project)
    db.session.flush()
    audit.record(actor, "project.create", "project", project.id, after={"name": project.name})
    return project


def projects() -> list[Project]:
    return list(db.session.scalars(select(Project).options(joinedload(Project.owner))
                                   .where(Project.archived_at.is_(None)).order_by(Project.name)))


# --- the chart: posts changing hands, workload, badges ------------------------------------

def on_post_holder_added(assignment, actor=None, **_kw) -> None:
    """Open work given to a post follows the post to its new holder."""
    chart = charts.load()
    post = chart.posts.get(assignment.post_id)
    if post is None:
        return
    holders = {u.id for u in chart.holding(post).users} | {assignment.user_id}
    moved = db.session.scalars(select(Task).options(
        selectinload(Task.watchers), selectinload(Task.steps)).where(
        Task.post_id == post.id, Task.status.in_(ACTIVE),
        or_(Task.assignee_id.is_(None), Task.assignee_id.not_in(holders)))).all()
    for task in moved:
        before = task.assignee_id
        task.assignee_id = assignment.user_id
        _audit(actor, "task.follow_post", task, before={"assignee_id": before},
               after={"assignee_id": task.assignee_id})
        tell(task.assignee_id, None, _l("Work of your post %(post)s is now yours",
                                        post=post.title), task)
        _changed(task, [before] if before else [])
    db.session.flush()


def on_post_holder_removed(assignment, actor=None, **_kw) -> None:
    """Open work the leaver did for a post (their own, or one they held from above through it)
    goes to whoever does the post now; work given to them by name stays theirs. Requests
    waiting for the leaver's decision go to whoever now decides for the work's unit."""
    chart = charts.load()
    leaver = assignment.user_id
    for task in db.session.scalars(select(Task).options(
            selectinload(Task.watchers), selectinload(Task.steps), joinedload(Task.creator))
            .where(or_(and_(Task.assignee_id == leaver, Task.post_id.is_not(None),
                            Task.status.in_((*ACTIVE, "requested"))),
                       and_(Task.requested_of_id == leaver, Task.status == "requested")))).all():
        post = chart.posts.get(task.post_id) if task.post_id else None
        holders = [u.id for u in chart.holding(post).users] if post else []
        before = (task.assignee_id, task.requested_of_id)
        if task.assignee_id == leaver and holders and leaver not in holders:
            task.assignee_id = holders[0]
            if task.status in ACTIVE:  # a request is told of by its decision
                tell(task.assignee_id, None, _l("Work of your post %(post)s is now yours",
                                                post=post.title), task)
        if task.requested_of_id == leaver:
            posts = [post] if post else (chart.own_posts(task.assignee_id)
                                         or chart.effective_posts(task.assignee_id))
            head = _head_for(posts[0]) if posts else None
            if head is not None and head.id != leaver:
                task.requested_of_id = head.id
                tell(head.id, actor, _l("%(name)s asks your unit to take on a task",
                                        name=task.creator.name), task)
        if (task.assignee_id, task.requested_of_id) == before:
            continue
        _audit(actor, "task.follow_post", task,
               before={"assignee_id": before[0], "requested_of_id": before[1]},
               after={"assignee_id": task.assignee_id, "requested_of_id": task.requested_of_id})
        _changed(task, [leaver])
    db.session.flush()


def _count(by, where, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    return dict(db.session.execute(select(by, func.count()).where(by.in_(ids), *where)
                                   .group_by(by)).all())


def open_by_user(user_ids: list[int]) -> dict[int, int]:
    return _count(Task.assignee_id, [Task.status.in_(ACTIVE)], user_ids)


def overdue_by_user(user_ids: list[int]) -> dict[int, int]:
    return _count(Task.assignee_id, [Task.status.in_(ACTIVE), Task.due_at < utcnow()], user_ids)


def open_by_post(post_ids: list[int]) -> dict[int, int]:
    return _count(Task.post_id, [Task.status.in_(ACTIVE)], post_ids)


def overdue_by_post(post_ids: list[int]) -> dict[int, int]:
    return _count(Task.post_id, [Task.status.in_(ACTIVE), Task.due_at < utcnow()], post_ids)


def due_counts(user_ids: list[int]) -> dict[int, int]:
    """The navbar badge: one's overdue work and the requests waiting for one's decision."""
    if not user_ids:
        return {}
    who = case((Task.status == "requested", Task.requested_of_id), else_=Task.assignee_id)
    rows = db.session.execute(
        select(who, func.count()).where(or_(
            and_(among(Task.assignee_id, user_ids), Task.status.in_(ACTIVE),
                 Task.due_at < utcnow()),
            and_(among(Task.requested_of_id, user_ids), Task.status == "requested")))
        .group_by(who)).all()
    return {uid: n for uid, n in rows if uid in user_ids}


def escalate(task: Task, now: datetime) -> list[int]:
    """Tell the nearest superior of the person doing overdue work (the run's starter when a
    stage has nobody; whoever set it when nobody is above its assignee); mark it so they are
    told once per due time."""
    setter = task.run.started_by_id if task.run else task.creator_id
    people = ([u.id for u in charts.load().superiors_of(task.assignee_id)][:1]
              if task.assignee_id else [setter])
    if not people and setter != task.assignee_id:
        people = [setter]
    task.escalated_at = now
    who = task.assignee.name if task.assignee else "—"
    for uid in people:
        tell(uid, None, _l("Overdue work of %(who)s", who=who), task, "task_overdue")
    _audit(None, "task.escalate", task, after={"told": people})
    feed.publish_many(people, "task.changed", wire(task))
    return people


def mark_reminder_sent(reminder: Reminder, now: datetime) -> None:
    db.session.execute(update(Reminder).where(Reminder.id == reminder.id).values(sent_at=now))


def on_deal_won(deal, actor: User | None = None, **_kw) -> None:
    """A won deal starts, for that deal, the programmes set to start then. One that cannot
    start (its first post has nobody) does not stop the deal: whoever won it is told why."""
    found = db.session.scalars(select(Programme).where(
        Programme.start_on_deal_won.is_(True), Programme.archived_at.is_(None),
        or_(Programme.won_pipeline_id.is_(None), Programme.won_pipeline_id == deal.pipeline_id))
        .order_by(Programme.id)).all()
    for programme in found:
        try:
            with db.session.begin_nested():
                start_run(actor, {"programme_id": programme.id, "link": f"deal:{deal.id}"})
        except DomainError as exc:
            if actor is not None:
                notifications.notify(actor.id, "run", _l("A programme could not start: %(name)s",
                                                         name=programme.name), exc.message, None)


def backlinks(actor: User, kind: str, ids: list[int], limit: int = 100) -> list[dict]:
    """Tasks and programme runs about these records (a client, a deal...), for their
    history: those the actor may see."""
    tasks = db.session.scalars(select(Task).where(
        Task.link_kind == kind, Task.link_id.in_(ids), Task.run_id.is_(None), visible_clause(actor))
        .order_by(Task.created_at.desc()).limit(limit)).all()
    runs = db.session.scalars(select(Run).where(
        Run.link_kind == kind, Run.link_id.in_(ids), run_visible_clause(actor))
        .order_by(Run.started_at.desc()).limit(limit)).all()
    return [*({"at": t.created_at, "kind": "task", "title": t.title, "url": task_path(t.id)}
              for t in tasks),
            *({"at": r.started_at, "kind": "run", "title": r.title, "url": run_path(r.id)}
              for r in runs)]
