"""Marshmallow schemas at the mail's boundaries: pages, the JSON API and socket events."""

from __future__ import annotations

from datetime import UTC

from marshmallow import EXCLUDE, Schema, fields, validate

from app.messaging.models import EMAIL_MODES, FOLDERS, IMPORTANCE, KINDS

SUBJECT_MAX = 300
BODY_MAX = 100_000  # characters of Markdown
RECIPIENTS_MAX = 200


class _In(Schema):
    class Meta:
        unknown = EXCLUDE


def _when(**kw):
    return fields.AwareDateTime(default_timezone=UTC, allow_none=True, load_default=None, **kw)


class ComposeIn(_In):
    to = fields.List(fields.String(validate=validate.Length(max=40)),
                     validate=validate.Length(max=RECIPIENTS_MAX), load_default=list)
    subject = fields.String(load_default="", validate=validate.Length(max=SUBJECT_MAX))
    body = fields.String(load_default="", validate=validate.Length(max=BODY_MAX))
    kind = fields.String(load_default="ordinary", validate=validate.OneOf(KINDS))
    importance = fields.String(load_default="normal", validate=validate.OneOf(IMPORTANCE))
    reply_due_at = _when()
    send_at = _when()
    external_to = fields.Email(allow_none=True, load_default=None)
    parent_id = fields.Integer(allow_none=True, load_default=None, strict=True)
    forward_of = fields.Integer(allow_none=True, load_default=None, strict=True)
    draft_id = fields.Integer(allow_none=True, load_default=None, strict=True)
    local_id = fields.String(allow_none=True, load_default=None,
                             validate=validate.Length(min=1, max=64))


class EditIn(_In):
    subject = fields.String(validate=validate.Length(max=SUBJECT_MAX))
    body = fields.String(validate=validate.Length(max=BODY_MAX))


class CorrectionIn(_In):
    body = fields.String(required=True, validate=validate.Length(min=1, max=BODY_MAX))


class IdsIn(_In):
    ids = fields.List(fields.Integer(strict=True), required=True,
                      validate=validate.Length(min=1, max=500))


class ReadIn(IdsIn):
    read = fields.Boolean(load_default=True)


class MoveIn(IdsIn):
    folder = fields.String(required=True, validate=validate.OneOf(("inbox", "archive", "sent")))


class StarIn(IdsIn):
    starred = fields.Boolean(required=True)


class SnoozeIn(_In):
    until = fields.AwareDateTime(default_timezone=UTC, required=True)


class LabelIn(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    color = fields.String(load_default="secondary", validate=validate.OneOf(
        ("secondary", "primary", "success", "danger", "warning", "info", "dark")))


class LabelsSetIn(_In):
    label_ids = fields.List(fields.Integer(strict=True), load_default=list,
                            validate=validate.Length(max=50))


class ListIn(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    shared = fields.Boolean(load_default=False)
    members = fields.List(fields.String(validate=validate.Length(max=40)), load_default=list,
                          validate=validate.Length(max=RECIPIENTS_MAX))


class PreferenceIn(_In):
    email_mode = fields.String(required=True, validate=validate.OneOf(EMAIL_MODES))


class FolderArgs(_In):
    folder = fields.String(load_default="inbox", validate=validate.OneOf((*FOLDERS, "deferred",
                                                                           "starred")))
    label_id = fields.Integer(load_default=None, allow_none=True)
