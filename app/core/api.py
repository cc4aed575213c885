"""Core JSON endpoints: the caller, tokens, notifications, users, audit log, attachments."""

from __future__ import annotations

from flask import request, send_file
from flask.views import MethodView

from app.core import attachments, audit, notifications, services
from app.core.api_base import api_blueprint, api_user, page_envelope, paginated
from app.core.schemas import (
    AttachmentSchema,
    AuditEventSchema,
    AuditFilterSchema,
    NotificationReadSchema,
    NotificationSchema,
    OwnerSchema,
    PageArgsSchema,
    TokenSchema,
    UserCreateSchema,
    UserSchema,
    UserUpdateSchema,
)

me_api = api_blueprint("me_api", __name__, "", "The signed-in caller")
tokens_api = api_blueprint("tokens_api", __name__, "/tokens", "Personal API tokens")
notifications_api = api_blueprint("notifications_api", __name__, "/notifications",
                                  "Notifications of the caller")
users_api = api_blueprint("users_api", __name__, "/users", "Accounts (administrators)")
audit_api = api_blueprint("audit_api", __name__, "/audit", "The audit log (administrators)")
attachments_api = api_blueprint("attachments_api", __name__, "/attachments",
                                "Files attached to records")


@me_api.route("/me")
@me_api.response(200, UserSchema)
def me():
    """The user the token belongs to."""
    return api_user()


# Tokens are created on the signed-in page only: a leaked token cannot mint successors.
@tokens_api.route("")
@tokens_api.response(200, TokenSchema(many=True))
def list_tokens():
    """The caller's tokens (never their secret)."""
    return services.tokens_of(api_user())


@tokens_api.route("/<int:token_id>")
class TokenItem(MethodView):
    @tokens_api.response(200, TokenSchema)
    def delete(self, token_id):
        """Revoke one of the caller's tokens."""
        return services.revoke_token(api_user(), token_id)


NotificationPage = page_envelope(NotificationSchema)


@notifications_api.route("")
@notifications_api.arguments(PageArgsSchema, location="query")
@notifications_api.response(200, NotificationPage)
def list_notifications(args):
    """The caller's notifications, newest first."""
    return paginated(notifications.query_for(api_user()), args["page"], args["per_page"])


@notifications_api.route("/read", methods=["POST"])
@notifications_api.arguments(NotificationReadSchema)
@notifications_api.response(200)
def read_notifications(data):
    """Mark notifications read: {"ids": [...]} or {"all": true}."""
    changed = notifications.mark_read(api_user(), data)
    return {"changed": changed, "unread": notifications.unread_count(api_user().id)}


UserPage = page_envelope(UserSchema)


@users_api.route("")
class Users(MethodView):
    @users_api.arguments(PageArgsSchema, location="query")
    @users_api.response(200, UserPage)
    def get(self, args):
        services.require_admin(api_user())
        return paginated(services.users_query(request.args.get("q")), args["page"],
                         args["per_page"])

    @users_api.arguments(UserCreateSchema)
    @users_api.response(201, UserSchema)
    def post(self, data):
        return services.create_user(api_user(), data)


@users_api.route("/<int:user_id>")
class UserItem(MethodView):
    @users_api.response(200, UserSchema)
    def get(self, user_id):
        services.require_admin(api_user())
        return services.get_user(user_id)

    @users_api.arguments(UserUpdateSchema(partial=True))
    @users_api.response(200, UserSchema)
    def patch(self, data, user_id):
        services.require_admin(api_user())
        return services.update_user(api_user(), services.get_user(user_id), data)


AuditPage = page_envelope(AuditEventSchema)


@audit_api.route("")
@audit_api.arguments(AuditFilterSchema, location="query")
@audit_api.response(200, AuditPage)
def list_audit(filters):
    """Audit events, newest first, filtered by actor, action, record and time."""
    services.require_admin(api_user())
    return paginated(audit.query(filters), filters["page"], 50)


@attachments_api.route("")
class AttachmentList(MethodView):
    @attachments_api.arguments(OwnerSchema, location="query")
    @attachments_api.response(200, AttachmentSchema(many=True))
    def get(self, owner):
        """Files on a record one may see."""
        return attachments.list_for(api_user(), owner["owner_type"], owner["owner_id"])

    @attachments_api.arguments(OwnerSchema, location="form")
    @attachments_api.response(201, AttachmentSchema)
    def post(self, owner):
        """Upload a file (multipart field `file`) to a record."""
        return attachments.store(api_user(), owner["owner_type"], owner["owner_id"],
                                 request.files.get("file"))


@attachments_api.route("/<int:attachment_id>")
class AttachmentItem(MethodView):
    @attachments_api.response(200, AttachmentSchema)
    def get(self, attachment_id):
        return attachments.get(api_user(), attachment_id)

    @attachments_api.response(204)
    def delete(self, attachment_id):
        attachments.delete(api_user(), attachment_id)


@attachments_api.route("/<int:attachment_id>/content")
@attachments_api.response(200)
def attachment_content(attachment_id):
    """The file's bytes, always as a download."""
    return send_attachment(attachments.get(api_user(), attachment_id))


def send_attachment(att):
    mime, headers = attachments.download_headers(att)
    resp = send_file(attachments.blob_path(att), mimetype=mime, as_attachment=True,
                     download_name=att.filename, max_age=0, conditional=False)
    resp.headers.update(headers)
    return resp


ALL = [me_api, tokens_api, notifications_api, users_api, audit_api, attachments_api]
