"""Marshmallow schemas at the boundaries of tasks and programmes: pages, API, sockets."""

from __future__ import annotations

from datetime import UTC

from marshmallow import EXCLUDE, Schema, fields, validate

from app.core.schemas import row_id
from app.tasks.models import PRIORITIES

TITLE_MAX = 300
TEXT_MAX = 50_000  # characters of Markdown
STEPS_MAX = 100
STAGES_MAX = 60
WATCHERS_MAX = 50


class _In(Schema):
    class Meta:
        unknown = EXCLUDE


def _when(**kw):
    return fields.AwareDateTime(default_timezone=UTC, allow_none=True, **kw)




class StepIn(_In):
    title = fields.String(required=True, validate=validate.Length(min=1, max=TITLE_MAX))
    assignee_id = row_id(allow_none=True, load_default=None)
    due_at = _when(load_default=None)
    parallel = fields.Boolean(load_default=False)
    required = fields.Boolean(load_default=True)


class StepUpdate(_In):
    title = fields.String(validate=validate.Length(min=1, max=TITLE_MAX))
    assignee_id = row_id(allow_none=True)
    due_at = _when()
    parallel = fields.Boolean()
    required = fields.Boolean()
    done = fields.Boolean()


class TaskIn(_In):
    title = fields.String(required=True, validate=validate.Length(min=1, max=TITLE_MAX))
    description = fields.String(load_default="", validate=validate.Length(max=TEXT_MAX))
    # "user:5" or "post:7"; empty means oneself.
    assignee = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    watchers = fields.List(row_id(), load_default=list, validate=validate.Length(max=WATCHERS_MAX))
    start_at = _when(load_default=None)
    due_at = _when(load_default=None)
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    # "message:12", "client:3", "deal:4", "project:2"
    link = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    steps = fields.List(fields.Nested(StepIn), load_default=list,
                        validate=validate.Length(max=STEPS_MAX))


class TaskUpdate(_In):
    title = fields.String(validate=validate.Length(min=1, max=TITLE_MAX))
    description = fields.String(validate=validate.Length(max=TEXT_MAX))
    assignee = fields.String(allow_none=True, validate=validate.Length(max=40))
    watchers = fields.List(row_id(), validate=validate.Length(max=WATCHERS_MAX))
    start_at = _when()
    due_at = _when()
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    link = fields.String(allow_none=True, validate=validate.Length(max=40))


class StatusIn(_In):
    # start: open → in progress; done: close; reopen: back to open; cancel: by the setter
    action = fields.String(required=True,
                           validate=validate.OneOf(("start", "done", "reopen", "cancel")))


class DecisionIn(_In):
    accept = fields.Boolean(required=True)
    assignee_id = row_id(allow_none=True, load_default=None)  # someone in the head's scope
    reason = fields.String(load_default="", validate=validate.Length(max=2000))


class CommentIn(_In):
    body = fields.String(required=True, validate=validate.Length(min=1, max=TEXT_MAX))


class ReminderIn(_In):
    remind_at = _when(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=300))


class StageIn(_In):
    key = fields.String(load_default=None, allow_none=True,
                        validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$"))
    title = fields.String(required=True, validate=validate.Length(min=1, max=TITLE_MAX))
    post_id = row_id(required=True)
    instructions = fields.String(load_default="", validate=validate.Length(max=TEXT_MAX))
    duration_hours = fields.Integer(strict=True, load_default=24,
                                    validate=validate.Range(min=1, max=24 * 365))
    checklist = fields.List(fields.String(validate=validate.Length(min=1, max=TITLE_MAX)),
                            load_default=list, validate=validate.Length(max=STEPS_MAX))
    needs_attachment = fields.Boolean(load_default=False)
    # Keys of the stages it waits for; None means the stage before it.
    after = fields.List(fields.String(validate=validate.Length(min=1, max=40)),
                        load_default=None, allow_none=True,
                        validate=validate.Length(max=STAGES_MAX))


class ProgrammeIn(_In):
    theme = fields.String(required=True, validate=validate.Length(min=1, max=80))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=TEXT_MAX))
    stages = fields.List(fields.Nested(StageIn), required=True,
                         validate=validate.Length(max=STAGES_MAX))
    start_on_deal_won = fields.Boolean(load_default=False)
    won_pipeline_id = row_id(load_default=None, allow_none=True)  # None: a deal of any pipeline


class RunIn(_In):
    programme_id = row_id(required=True)
    title = fields.String(load_default="", validate=validate.Length(max=TITLE_MAX))
    link = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    start_at = _when(load_default=None)


class ProjectIn(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=TEXT_MAX))


class TaskFilter(_In):
    q = fields.String(load_default="", validate=validate.Length(max=200))
    status = fields.String(load_default=None, allow_none=True)
    assignee_id = row_id(load_default=None, allow_none=True)
    creator_id = row_id(load_default=None, allow_none=True)
    priority = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(PRIORITIES))
    link = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    run_id = row_id(load_default=None, allow_none=True)
    due_from = _when(load_default=None)
    due_to = _when(load_default=None)
    overdue = fields.Boolean(load_default=False)
