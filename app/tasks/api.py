"""JSON API of tasks and programmes under /api/v1: tasks with their steps, comments,
reminders and history; my day and the team board; programmes (versioned templates of
stages), their runs, and projects.

Every call acts as the bearer of a personal token, or as the signed-in person of a browser
session (then changing calls carry the page's CSRF token in `X-CSRFToken`). The services
decide everything; these endpoints only shape what goes in and what comes out. A task the
caller may not see is 404, as if it did not exist.
"""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from app.core import attachments
from app.core.api_base import page_envelope, paginated, session_api_blueprint
from app.core.clock import utcnow
from app.core.forms import MAX_ID
from app.core.models import User
from app.core.schemas import AttachmentSchema
from app.extensions import db
from app.orgchart import chart as charts
from app.tasks import services
from app.tasks.models import RUN_STATES, STATUSES, Programme, Run, Step, Task, Watcher
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

ALL: list = []  # flask-smorest blueprints, registered by app.tasks.register

def _blueprint(name: str, url_prefix: str, description: str):
    return session_api_blueprint(name, __name__, url_prefix, description)


def _me() -> User:
    return g.api_user


tasks_api = _blueprint("tasks_api", "/tasks",
                       "Tasks: steps, status, requests to other units, comments, reminders, "
                       "history, my day, the team board")
reminders_api = _blueprint("task_reminders_api", "/task-reminders", "The caller's task reminders")
programmes_api = _blueprint("programmes_api", "/programmes",
                            "Programmes: versioned templates of stages given to posts")
runs_api = _blueprint("programme_runs_api", "/programme-runs",
                      "Programme runs: stages opening one after another")
projects_api = _blueprint("projects_api", "/projects", "Projects a programme can run for")


# --- what comes out -----------------------------------------------------------------------

class TaskPerson(Schema):
    id = fields.Integer()
    name = fields.String()


class TaskLink(Schema):
    kind = fields.String(metadata={"description": "message, project, client, deal, task..."})
    id = fields.Integer()
    title = fields.String()
    url = fields.String()


class TaskStep(Schema):
    id = fields.Integer()
    position = fields.Integer()
    title = fields.String()
    assignee = fields.Nested(TaskPerson, allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    parallel = fields.Boolean(metadata={"description": "may be checked before the step above"})
    required = fields.Boolean(metadata={"description": "the task cannot close while it is open"})
    done = fields.Boolean()
    done_at = fields.DateTime(allow_none=True)
    done_by_id = fields.Integer(allow_none=True)


class TaskOut(Schema):
    id = fields.Integer()
    title = fields.String(metadata={"description": "plain text; escape it when showing it"})
    status = fields.String(metadata={"description": ", ".join(STATUSES)})
    priority = fields.String()
    creator = fields.Nested(TaskPerson)
    assignee = fields.Nested(TaskPerson, allow_none=True)
    post_id = fields.Integer(allow_none=True,
                             metadata={"description": "given to a post: it follows the holder"})
    requested_of_id = fields.Integer(allow_none=True,
                                     metadata={"description": "the head asked to accept it"})
    start_at = fields.DateTime(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    overdue = fields.Boolean()
    link = fields.String(allow_none=True, metadata={"description": '"kind:id" as given'})
    run_id = fields.Integer(allow_none=True, metadata={"description": "set for a programme stage"})
    stage_key = fields.String(allow_none=True)
    planned_start_at = fields.DateTime(allow_none=True)
    planned_due_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    opened_at = fields.DateTime(allow_none=True)
    done_at = fields.DateTime(allow_none=True)


class TaskDetail(TaskOut):
    description = fields.String(metadata={"description": "Markdown as written"})
    description_html = fields.String(metadata={"description": "rendered and sanitised"})
    decline_reason = fields.String(allow_none=True)
    requested_of = fields.Nested(TaskPerson, allow_none=True)
    needs_attachment = fields.Boolean(metadata={"description": "a stage closes only with a file"})
    stage_after = fields.List(fields.String(), allow_none=True)
    steps = fields.List(fields.Nested(TaskStep))
    watchers = fields.List(fields.Nested(TaskPerson))
    linked = fields.Nested(TaskLink, allow_none=True,
                           metadata={"description": "the linked record, when the caller may see it"})
    attachments = fields.List(fields.Nested(AttachmentSchema))
    editable = fields.Boolean(metadata={"description": "the caller set it or does it"})


class TaskComment(Schema):
    id = fields.Integer()
    task_id = fields.Integer()
    author = fields.Nested(TaskPerson)
    body = fields.String(metadata={"description": "Markdown as written"})
    body_html = fields.String(metadata={"description": "rendered and sanitised"})
    created_at = fields.DateTime()


class TaskReminder(Schema):
    id = fields.Integer()
    task_id = fields.Integer()
    remind_at = fields.DateTime()
    note = fields.String()
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class TaskHistoryEvent(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.Nested(TaskPerson, allow_none=True,
                          metadata={"description": "null for the CRM's own jobs"})
    action = fields.String()
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)


class StepTaskRef(Schema):
    id = fields.Integer()
    title = fields.String()
    status = fields.String()
    due_at = fields.DateTime(allow_none=True)


class MyStep(TaskStep):
    task = fields.Nested(StepTaskRef)


class TaskDay(Schema):
    requests = fields.List(fields.Nested(TaskOut),
                           metadata={"description": "requests waiting for the caller's decision"})
    overdue = fields.List(fields.Nested(TaskOut))
    today = fields.List(fields.Nested(TaskOut))
    upcoming = fields.List(fields.Nested(TaskOut))
    undated = fields.List(fields.Nested(TaskOut))
    steps = fields.List(fields.Nested(MyStep),
                        metadata={"description": "the caller's steps in other people's tasks"})


class BoardColumn(Schema):
    status = fields.String()
    total = fields.Integer(metadata={"description": "all of them; `tasks` holds the first 100"})
    tasks = fields.List(fields.Nested(TaskOut))


class TaskBoard(Schema):
    person_id = fields.Integer(allow_none=True)
    team = fields.List(fields.Nested(TaskPerson),
                       metadata={"description": "the caller and everyone below them"})
    columns = fields.List(fields.Nested(BoardColumn))


class PostRef(Schema):
    id = fields.Integer()
    title = fields.String(allow_none=True)


class StageOut(Schema):
    key = fields.String()
    position = fields.Integer()
    title = fields.String()
    post = fields.Nested(PostRef)
    instructions = fields.String()
    duration_hours = fields.Integer()
    checklist = fields.List(fields.String())
    needs_attachment = fields.Boolean()
    after = fields.List(fields.String(), metadata={"description": "keys of the stages it waits for"})


class VersionOut(Schema):
    id = fields.Integer()
    number = fields.Integer()
    created_at = fields.DateTime()
    created_by_id = fields.Integer()
    stage_count = fields.Integer()


class ProgrammeOut(Schema):
    id = fields.Integer()
    theme = fields.String()
    name = fields.String()
    description = fields.String()
    created_by_id = fields.Integer()
    created_at = fields.DateTime()
    archived_at = fields.DateTime(allow_none=True)
    version = fields.Integer(metadata={"description": "the current version's number"})
    stage_count = fields.Integer()


class ProgrammeDetail(ProgrammeOut):
    stages = fields.List(fields.Nested(StageOut), metadata={"description": "of the current version"})
    versions = fields.List(fields.Nested(VersionOut))


class ProgrammeRef(Schema):
    id = fields.Integer()
    name = fields.String()
    theme = fields.String()


class RunStage(Schema):
    id = fields.Integer(metadata={"description": "the stage's task id"})
    key = fields.String()
    position = fields.Integer()
    title = fields.String()
    status = fields.String(metadata={"description": "waiting, open, in_progress, done, cancelled"})
    post = fields.Nested(PostRef)
    assignee = fields.Nested(TaskPerson, allow_none=True)
    after = fields.List(fields.String())
    needs_attachment = fields.Boolean()
    planned_start_at = fields.DateTime(allow_none=True)
    planned_due_at = fields.DateTime(allow_none=True)
    opened_at = fields.DateTime(allow_none=True, metadata={"description": "actual start"})
    due_at = fields.DateTime(allow_none=True, metadata={"description": "due since it opened"})
    done_at = fields.DateTime(allow_none=True, metadata={"description": "actual end"})
    overdue = fields.Boolean()
    steps_total = fields.Integer()
    steps_done = fields.Integer()


class RunOut(Schema):
    id = fields.Integer()
    title = fields.String()
    status = fields.String(metadata={"description": ", ".join(RUN_STATES)})
    programme = fields.Nested(ProgrammeRef)
    version = fields.Integer(metadata={"description": "the programme version it runs"})
    link = fields.String(allow_none=True)
    started_by = fields.Nested(TaskPerson)
    started_at = fields.DateTime()
    done_at = fields.DateTime(allow_none=True)
    stages_total = fields.Integer()
    stages_done = fields.Integer()


class RunDetail(RunOut):
    linked = fields.Nested(TaskLink, allow_none=True)
    stages = fields.List(fields.Nested(RunStage))


class ProjectOut(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    owner = fields.Nested(TaskPerson)
    created_at = fields.DateTime()


# --- what goes in (beyond app.tasks.schemas) ----------------------------------------------

def _query_id(**kw):
    """An id in a query string (text, unlike the strict ids of JSON bodies)."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kw)


def _statuses(value: str) -> None:
    unknown = [s for s in value.split(",") if s and s not in STATUSES]
    if unknown:
        raise ValidationError(_("Unknown status: %(status)s.", status=unknown[0][:20]))


class TaskPageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_ID))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=200))


class TaskListArgs(TaskFilter, TaskPageArgs):
    status = fields.String(load_default=None, allow_none=True,
                           validate=[validate.Length(max=200), _statuses],
                           metadata={"description": "one or more, separated by commas"})
    assignee_id = _query_id(load_default=None, allow_none=True)
    creator_id = _query_id(load_default=None, allow_none=True)
    run_id = _query_id(load_default=None, allow_none=True)


class BoardArgs(Schema):
    person_id = _query_id(load_default=None, allow_none=True,
                          metadata={"description": "one person of the caller's team"})


class ProgrammeArgs(Schema):
    archived = fields.Boolean(load_default=False, metadata={"description": "include archived"})


class RunArgs(TaskPageArgs):
    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(RUN_STATES))


TaskPage = page_envelope(TaskOut)
RunPage = page_envelope(RunOut)


# --- shaping ------------------------------------------------------------------------------

def _token(kind: str | None, record_id: int | None) -> str | None:
    return f"{kind}:{record_id}" if kind else None


def _task(task: Task, now) -> dict:
    return {"id": task.id, "title": task.title, "status": task.status, "priority": task.priority,
            "creator": task.creator, "assignee": task.assignee, "post_id": task.post_id,
            "requested_of_id": task.requested_of_id, "start_at": task.start_at,
            "due_at": task.due_at,
            "overdue": task.is_active and task.due_at is not None and task.due_at < now,
            "link": _token(task.link_kind, task.link_id), "run_id": task.run_id,
            "stage_key": task.stage_key, "planned_start_at": task.planned_start_at,
            "planned_due_at": task.planned_due_at, "created_at": task.created_at,
            "updated_at": task.updated_at, "opened_at": task.opened_at, "done_at": task.done_at}


def _tasks(rows) -> list[dict]:
    now = utcnow()
    return [_task(t, now) for t in rows]


def _step(step: Step) -> dict:
    return {"id": step.id, "position": step.position, "title": step.title,
            "assignee": step.assignee, "due_at": step.due_at, "parallel": step.parallel,
            "required": step.required, "done": step.done_at is not None,
            "done_at": step.done_at, "done_by_id": step.done_by_id}


def _full(task_id: int) -> Task:
    """A task with the people, steps and watchers its page shows: four queries."""
    return db.session.scalar(select(Task).options(
        joinedload(Task.creator), joinedload(Task.assignee), joinedload(Task.requested_of),
        selectinload(Task.steps).joinedload(Step.assignee),
        selectinload(Task.watchers).joinedload(Watcher.user),
    ).where(Task.id == task_id).execution_options(populate_existing=True))


def _detail(task_id: int) -> dict:
    """A task the caller may see, in full (404 otherwise)."""
    me = _me()
    services.get_task(me, task_id)
    task = _full(task_id)
    link = services.link_of(me, task)
    return {**_task(task, utcnow()), "description": task.description,
            "description_html": task.description_html, "decline_reason": task.decline_reason,
            "requested_of": task.requested_of, "needs_attachment": task.needs_attachment,
            "stage_after": task.stage_after, "steps": [_step(s) for s in task.steps],
            "watchers": [w.user for w in task.watchers],
            "linked": None if link is None else vars(link),
            "attachments": attachments.list_for(me, services.OWNER, task.id),
            "editable": services.can_edit(me, task)}


def _steps_of(task_id: int) -> list[dict]:
    task = _full(task_id)
    return [_step(s) for s in task.steps]


def _post(post_id: int) -> dict:
    post = charts.load().posts.get(post_id)
    return {"id": post_id, "title": post.title if post else None}


def _programme(programme: Programme) -> dict:
    current = programme.current
    return {"id": programme.id, "theme": programme.theme, "name": programme.name,
            "description": programme.description, "created_by_id": programme.created_by_id,
            "created_at": programme.created_at, "archived_at": programme.archived_at,
            "version": current.number, "stage_count": len(current.stages)}


def _stage_template(stage) -> dict:
    return {"key": stage.key, "position": stage.position, "title": stage.title,
            "post": _post(stage.post_id), "instructions": stage.instructions,
            "duration_hours": stage.duration_hours, "checklist": list(stage.checklist),
            "needs_attachment": stage.needs_attachment, "after": list(stage.after)}


def _programme_detail(programme_id: int) -> dict:
    programme = services.get_programme(programme_id)
    return {**_programme(programme),
            "stages": [_stage_template(s) for s in programme.current.stages],
            "versions": [{"id": v.id, "number": v.number, "created_at": v.created_at,
                          "created_by_id": v.created_by_id, "stage_count": len(v.stages)}
                         for v in programme.versions]}


def _run(run: Run) -> dict:
    programme = run.version.programme
    return {"id": run.id, "title": run.title, "status": run.status,
            "programme": programme, "version": run.version.number,
            "link": _token(run.link_kind, run.link_id), "started_by": run.started_by,
            "started_at": run.started_at, "done_at": run.done_at,
            "stages_total": len(run.stages),
            "stages_done": sum(s.status == "done" for s in run.stages)}


def _run_detail(run_id: int) -> dict:
    me = _me()
    run = services.get_run(me, run_id)
    now = utcnow()
    link = services.link_of(me, run)
    stages = [{"id": s.id, "key": s.stage_key, "position": s.stage_position, "title": s.title,
               "status": s.status, "post": _post(s.post_id), "assignee": s.assignee,
               "after": list(s.stage_after or []), "needs_attachment": s.needs_attachment,
               "planned_start_at": s.planned_start_at, "planned_due_at": s.planned_due_at,
               "opened_at": s.opened_at, "due_at": s.due_at, "done_at": s.done_at,
               "overdue": s.is_active and s.due_at is not None and s.due_at < now,
               "steps_total": len(s.steps),
               "steps_done": sum(st.done_at is not None for st in s.steps)}
              for s in run.stages]
    return {**_run(run), "linked": None if link is None else vars(link), "stages": stages}


def _filters(args: dict) -> dict:
    return {k: v for k, v in args.items() if k not in ("page", "per_page")}


# --- tasks --------------------------------------------------------------------------------

@tasks_api.route("")
class Tasks(MethodView):
    @tasks_api.arguments(TaskListArgs, location="query")
    @tasks_api.response(200, TaskPage)
    def get(self, args):
        """The tasks the caller may see, newest first, filtered.

        `q` searches title and description; `status` takes one or more statuses separated
        by commas; `link` is "kind:id"; `due_from`/`due_to` bound the due time; `overdue`
        keeps open work past due."""
        page = paginated(services.search(_me(), _filters(args)), args["page"], args["per_page"])
        page["items"] = _tasks(page["items"])
        return page

    @tasks_api.arguments(TaskIn)
    @tasks_api.response(201, TaskDetail)
    def post(self, data):
        """Set a task. `assignee` is "user:<id>" or "post:<id>" (its holder; from above when
        vacant), or empty for oneself. Work for someone outside the caller's scope becomes a
        request (status `requested`) to the head of their unit, never a silent assignment."""
        task = services.create_task(_me(), data)
        return _detail(task.id)


@tasks_api.route("/<int:task_id>")
class TaskItem(MethodView):
    @tasks_api.response(200, TaskDetail)
    def get(self, task_id):
        """A task with its steps, watchers, linked record and files."""
        return _detail(task_id)

    @tasks_api.arguments(TaskUpdate)
    @tasks_api.response(200, TaskDetail)
    def patch(self, data, task_id):
        """Change a task (its setter or the one doing it); fields left out keep their value.
        `watchers` replaces the list."""
        services.update_task(_me(), task_id, data)
        return _detail(task_id)


@tasks_api.route("/<int:task_id>/status", methods=["POST"])
@tasks_api.arguments(StatusIn)
@tasks_api.response(200, TaskDetail)
def task_status(data, task_id):
    """`start` (open → in progress), `done` (refused while a required step is open or a stage
    lacks its file), `reopen` (done → open), `cancel` (the setter only). A change the task
    is not in the state for is 409, so a repeated call changes nothing."""
    services.set_status(_me(), task_id, data)
    return _detail(task_id)


@tasks_api.route("/<int:task_id>/decision", methods=["POST"])
@tasks_api.arguments(DecisionIn)
@tasks_api.response(200, TaskDetail)
def task_decision(data, task_id):
    """The head asked to take on a request accepts it (`accept`: true, optionally giving it
    to `assignee_id` in their scope) or declines it with a `reason`. 409 once decided."""
    services.decide(_me(), task_id, data)
    return _detail(task_id)


@tasks_api.route("/<int:task_id>/steps")
class TaskSteps(MethodView):
    @tasks_api.response(200, TaskStep(many=True))
    def get(self, task_id):
        """The task's steps in order."""
        services.get_task(_me(), task_id)
        return _steps_of(task_id)

    @tasks_api.arguments(StepIn)
    @tasks_api.response(201, TaskStep)
    def post(self, data, task_id):
        """Add a step at the end."""
        step = services.add_step(_me(), task_id, data)
        return _step(step)


@tasks_api.route("/<int:task_id>/steps/<int:step_id>")
class TaskStepItem(MethodView):
    @tasks_api.arguments(StepUpdate)
    @tasks_api.response(200, TaskStep)
    def patch(self, data, task_id, step_id):
        """Change a step, or check it: `{"done": true}` (also for the step's own assignee).
        A step comes after the one above it unless it is parallel (409 otherwise)."""
        step = services.update_step(_me(), task_id, step_id, data)
        return _step(step)

    @tasks_api.response(204)
    def delete(self, task_id, step_id):
        """Remove a step; the ones below move up."""
        services.delete_step(_me(), task_id, step_id)


@tasks_api.route("/<int:task_id>/comments")
class TaskComments(MethodView):
    @tasks_api.response(200, TaskComment(many=True))
    def get(self, task_id):
        """The comments, oldest first."""
        return services.comments_of(_me(), task_id)

    @tasks_api.arguments(CommentIn)
    @tasks_api.response(201, TaskComment)
    def post(self, data, task_id):
        """Comment (Markdown) on a task one may see; everyone on it sees it live."""
        return services.add_comment(_me(), task_id, data)


@tasks_api.route("/<int:task_id>/reminders")
class TaskReminders(MethodView):
    @tasks_api.response(200, TaskReminder(many=True))
    def get(self, task_id):
        """The caller's own reminders on the task (nobody else's)."""
        return services.reminders_of(_me(), task_id)

    @tasks_api.arguments(ReminderIn)
    @tasks_api.response(201, TaskReminder)
    def post(self, data, task_id):
        """Remind the caller at `remind_at` (still to come) by notification and e-mail."""
        return services.add_reminder(_me(), task_id, data)


@tasks_api.route("/<int:task_id>/history")
@tasks_api.response(200, TaskHistoryEvent(many=True))
def task_history(task_id):
    """Every change of the task, oldest first, from the audit log."""
    return services.history(_me(), task_id)


@tasks_api.route("/my-day")
@tasks_api.response(200, TaskDay)
def my_day():
    """The caller's own work: requests to decide, overdue, due today (in the caller's time
    zone), upcoming and undated, and their steps in other people's tasks."""
    day = services.my_day(_me())
    return {"requests": _tasks(day.requests), "overdue": _tasks(day.overdue),
            "today": _tasks(day.today), "upcoming": _tasks(day.upcoming),
            "undated": _tasks(day.undated),
            "steps": [{**_step(s), "task": s.task} for s in day.steps]}


@tasks_api.route("/board")
@tasks_api.arguments(BoardArgs, location="query")
@tasks_api.response(200, TaskBoard)
def board(args):
    """The team board of the caller's scope by status (requested, open, in progress, done in
    the last two weeks); `person_id` narrows it to one person of the team (404 otherwise)."""
    columns = services.board(_me(), args["person_id"])
    return {"person_id": args["person_id"], "team": services.team_of(_me()),
            "columns": [{"status": status, "total": col["total"], "tasks": _tasks(col["tasks"])}
                        for status, col in columns.items()]}


@reminders_api.route("/<int:reminder_id>", methods=["DELETE"])
@reminders_api.response(204)
def delete_reminder(reminder_id):
    """Delete one of the caller's reminders (anyone else's is 404)."""
    services.delete_reminder(_me(), reminder_id)


# --- programmes ---------------------------------------------------------------------------

@programmes_api.route("")
class Programmes(MethodView):
    @programmes_api.arguments(ProgrammeArgs, location="query")
    @programmes_api.response(200, ProgrammeOut(many=True))
    def get(self, args):
        """Every programme by theme and name (everyone may read them); `archived` includes
        the archived ones."""
        return [_programme(p) for p in services.programmes(args["archived"])]

    @programmes_api.arguments(ProgrammeIn)
    @programmes_api.response(201, ProgrammeDetail)
    def post(self, data):
        """A new programme (heads, chart editors and administrators). Each stage names a
        `post_id`; `after` lists the keys of the stages it waits for (by default the one
        before it). No stages, an unknown post or a cycle is 422."""
        programme = services.create_programme(_me(), data)
        return _programme_detail(programme.id)


@programmes_api.route("/<int:programme_id>")
class ProgrammeItem(MethodView):
    @programmes_api.response(200, ProgrammeDetail)
    def get(self, programme_id):
        """A programme with its current version's stages and the list of versions."""
        return _programme_detail(programme_id)

    @programmes_api.arguments(ProgrammeIn)
    @programmes_api.response(200, ProgrammeDetail)
    def put(self, data, programme_id):
        """Replace name, theme, description and stages. Changed stages make a new version;
        runs already started keep theirs."""
        services.update_programme(_me(), programme_id, data)
        return _programme_detail(programme_id)

    @programmes_api.response(204)
    def delete(self, programme_id):
        """Archive the programme: no new runs; runs already started go on."""
        services.archive_programme(_me(), programme_id)


# --- runs ---------------------------------------------------------------------------------

@runs_api.route("")
class Runs(MethodView):
    @runs_api.arguments(RunArgs, location="query")
    @runs_api.response(200, RunPage)
    def get(self, args):
        """The runs the caller started or has a stage in (everyone's for executives), newest
        first; `status`: running, done or cancelled."""
        page = paginated(services.runs(_me(), args["status"]), args["page"], args["per_page"])
        page["items"] = [_run(r) for r in page["items"]]
        return page

    @runs_api.arguments(RunIn)
    @runs_api.response(201, RunDetail)
    def post(self, data):
        """Start the current version of a programme for a `link` ("client:<id>", "deal:<id>",
        "project:<id>"): one task per stage; the stages that wait for nothing open at once
        and go to their post's holder (from above when vacant)."""
        run = services.start_run(_me(), data)
        return _run_detail(run.id)


@runs_api.route("/<int:run_id>")
@runs_api.response(200, RunDetail)
def get_run(run_id):
    """A run with its stages: planned start and due against when each opened and was done."""
    return _run_detail(run_id)


@runs_api.route("/<int:run_id>/cancel", methods=["POST"])
@runs_api.response(200, RunDetail)
def cancel_run(run_id):
    """Cancel a running run (the one who started it): its open stages are cancelled. 409 for
    a run that has ended."""
    services.cancel_run(_me(), run_id)
    return _run_detail(run_id)


# --- projects -----------------------------------------------------------------------------

@projects_api.route("")
class Projects(MethodView):
    @projects_api.response(200, ProjectOut(many=True))
    def get(self):
        """Live projects by name."""
        return services.projects()

    @projects_api.arguments(ProjectIn)
    @projects_api.response(201, ProjectOut)
    def post(self, data):
        """A new project, owned by the caller; link runs and tasks to it as "project:<id>"."""
        return services.create_project(_me(), data)


ALL.extend([tasks_api, reminders_api, programmes_api, runs_api, projects_api])
