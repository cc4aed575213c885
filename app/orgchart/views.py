"""Pages of the chart: the board, a post, a person, editing, the template, workload."""

from __future__ import annotations

from flask import abort, flash, has_request_context, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.core.errors import DomainError
from app.core.models import User
from app.extensions import db
from app.orgchart import bp, services, template
from app.orgchart import chart as charts
from app.orgchart.models import Assignment


def _form(booleans: tuple[str, ...] = ()) -> dict:
    """The posted form as service input: checkboxes as booleans, an empty parent as none."""
    data = {k: v for k, v in request.form.items() if k not in ("csrf_token", "next")}
    for key in booleans:
        data[key] = key in request.form
    if data.get("parent_id") == "":
        data["parent_id"] = None
    return data


def _back(default: str) -> str:
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


@bp.app_context_processor
def chart_links():
    """Link prefixes for pages that link thousands of posts (url_for per link is slow)."""
    return {"href": {"post": url_for("orgchart.post", post_id=0)[:-1],
                     "person": url_for("orgchart.person", user_id=0)[:-1],
                     "unit": url_for("orgchart.board") + "?unit="}} if has_request_context() else {}


def home_card(user) -> dict:
    """What the home page shows of the chart: one's posts, superiors and subordinates."""
    chart = charts.load()
    return {"posts": chart.own_posts(user.id), "from_above": chart.held_from_above(user.id),
            "superiors": chart.superiors_of(user.id)[:1],
            "subordinates": len(chart.subordinates_of(user.id)), "chart": chart}


@bp.route("/")
def board():
    """The whole organisation, or one unit zoomed in (?unit=)."""
    chart = charts.load()
    unit_id = request.args.get("unit", type=int)
    if unit_id is not None and unit_id not in chart.units:
        abort(404)
    roots = [chart.units[unit_id]] if unit_id else chart.roots()
    return render_template("orgchart/board.html", chart=chart, roots=roots, zoom=unit_id,
                           printing=bool(request.args.get("print")),
                           can_edit=services.can_edit_chart(current_user))


@bp.route("/posts/<int:post_id>")
def post(post_id: int, errors: dict | None = None, form=None):
    chart = charts.load()
    post = chart.posts.get(post_id)
    if post is None:
        abort(404)
    history = db.session.scalars(
        select(Assignment).options(joinedload(Assignment.user))
        .where(Assignment.post_id == post_id).order_by(Assignment.started_at.desc())).all()
    users = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name)) \
        if services.can_edit_chart(current_user) else []
    return render_template(
        "orgchart/post.html", chart=chart, post=post,
        superior=chart.superior_post(post), below=chart.direct_reports(post),
        history=history, capabilities=services.capabilities_of_post(post_id),
        capability_names=services.CAPABILITIES, can_edit=services.can_edit_chart(current_user),
        users=users, errors=errors or {}, form=form)


@bp.route("/people/<int:user_id>")
def person(user_id: int):
    chart = charts.load()
    person = db.session.get(User, user_id)
    if person is None:
        abort(404)
    may_see_load = (person.id == current_user.id or services.can_see_all(current_user)
                    or services.can_manage(current_user, person))
    people, _posts = services.workload(current_user) if may_see_load else ([], [])
    load = next((row for row in people if row.id == person.id), None)
    return render_template(
        "orgchart/person.html", chart=chart, person=person,
        own=chart.own_posts(person.id),
        from_above=chart.held_from_above(person.id),
        superiors=chart.superiors_of(person.id), subordinates=chart.subordinates_of(person.id),
        load=load, labels={p.key: p.label for p in services.providers()})


# --- editing --------------------------------------------------------------------------------

def _guard():
    if not services.can_edit_chart(current_user):
        abort(403)


@bp.route("/manage")
def manage():
    _guard()
    return _manage_page()


def _manage_page(form=None, which: str | None = None):
    """The editing page; after a refused form, `which` form is shown again as typed."""
    chart = charts.load()
    units = [u for root in chart.roots() for u in _walk(chart, root)]
    return render_template("orgchart/manage.html", chart=chart, units=units, form=form or {},
                           which=which)


def _walk(chart, unit, depth=0):
    unit.depth = depth
    yield unit
    for child in chart.children[unit.id]:
        yield from _walk(chart, child, depth + 1)


def _run(action, ok_message: str, back: str, then=None, again=None):
    """Run an editing service: on success flash and go on. On a domain error undo it and
    either show the form `again(errors)` with what was typed (422), or flash the reason and
    go back."""
    _guard()
    try:
        result = action()
    except DomainError as exc:
        db.session.rollback()
        charts.forget()
        details = " ".join(" ".join(v) for v in exc.fields.values())
        flash(f"{exc.message} {details}".strip(), "danger")
        if again is not None and exc.status != 403:
            return again(exc.fields or {"_": [exc.message]}), exc.status
        return redirect(_back(back))
    flash(ok_message, "success")
    return redirect(then(result) if callable(then) else (then or _back(back)))


def _post_page(post_id: int) -> str:
    return url_for("orgchart.post", post_id=post_id)


@bp.route("/units", methods=["POST"])
def unit_create():
    return _run(lambda: services.create_unit(current_user, _form()), _("The unit is created."),
                url_for("orgchart.manage"),
                again=lambda errors: _manage_page(request.form, "unit"))


@bp.route("/units/<int:unit_id>", methods=["POST"])
def unit_update(unit_id: int):
    return _run(lambda: services.update_unit(current_user, unit_id, _form()), _("Saved."),
                url_for("orgchart.manage"))


@bp.route("/units/<int:unit_id>/archive", methods=["POST"])
def unit_archive(unit_id: int):
    return _run(lambda: services.archive_unit(current_user, unit_id),
                _("The unit is archived with everything below it."), url_for("orgchart.manage"))


@bp.route("/posts", methods=["POST"])
def post_create():
    return _run(lambda: services.create_post(current_user, _form(("is_head",))),
                _("The post is created."), url_for("orgchart.manage"),
                then=lambda post: _post_page(post.id),
                again=lambda errors: _manage_page(request.form, "post"))


@bp.route("/posts/<int:post_id>/edit", methods=["POST"])
def post_update(post_id: int):
    return _run(lambda: services.update_post(current_user, post_id, _form(("is_head",))),
                _("Saved."), _post_page(post_id), then=_post_page(post_id),
                again=lambda errors: post(post_id, errors, request.form))


@bp.route("/posts/<int:post_id>/archive", methods=["POST"])
def post_archive(post_id: int):
    return _run(lambda: services.archive_post(current_user, post_id), _("The post is archived."),
                _post_page(post_id), then=url_for("orgchart.board"))


@bp.route("/posts/<int:post_id>/holders", methods=["POST"])
def holder_add(post_id: int):
    data = {**_form(("acting",)), "post_id": post_id}
    return _run(lambda: services.assign(current_user, data), _("The person is on the post."),
                _post_page(post_id), then=_post_page(post_id))


@bp.route("/assignments/<int:assignment_id>/end", methods=["POST"])
def holder_end(assignment_id: int):
    post_id = services.get_assignment(assignment_id).post_id
    return _run(lambda: services.end_assignment(current_user, assignment_id),
                _("The person left the post."), _post_page(post_id), then=_post_page(post_id))


@bp.route("/assignments/<int:assignment_id>/acting", methods=["POST"])
def holder_acting(assignment_id: int):
    post_id = services.get_assignment(assignment_id).post_id
    data = {"acting": request.form.get("acting") == "1"}
    return _run(lambda: services.update_assignment(current_user, assignment_id, data), _("Saved."),
                _post_page(post_id), then=_post_page(post_id))


@bp.route("/posts/<int:post_id>/capabilities", methods=["POST"])
def capability_set(post_id: int):
    data = _form()
    if data.get("amount") in ("", None):
        data["amount"] = None
    return _run(lambda: services.set_capability(current_user, post_id, data), _("Saved."),
                _post_page(post_id), then=_post_page(post_id))


@bp.route("/posts/<int:post_id>/capabilities/<name>/remove", methods=["POST"])
def capability_remove(post_id: int, name: str):
    return _run(lambda: services.remove_capability(current_user, post_id, name), _("Removed."),
                _post_page(post_id), then=_post_page(post_id))


@bp.route("/template", methods=["POST"])
def apply_template():
    return _run(lambda: template.apply(current_user, _form()),
                _("The company is created from the seven-division template."),
                url_for("orgchart.manage"), then=lambda unit: url_for("orgchart.board", unit=unit.id),
                again=lambda errors: _manage_page(request.form, "template"))


# --- workload -------------------------------------------------------------------------------

@bp.route("/workload", methods=["GET", "POST"])
def workload():
    errors, status = {}, 200
    if request.method == "POST":
        try:
            services.set_thresholds(current_user, request.form)
        except DomainError as exc:
            errors, status = exc.fields or {"overloaded_at": [exc.message]}, exc.status
            if exc.status == 403:
                abort(403)
        else:
            flash(_("The thresholds are saved."), "success")
            return redirect(url_for("orgchart.workload"))
    people, posts = services.workload(current_user)
    return render_template("orgchart/workload.html", people=people, posts=posts,
                           thresholds=services.thresholds(), errors=errors,
                           labels={p.key: p.label for p in services.providers()},
                           can_edit=services.can_edit_chart(current_user),
                           chart=charts.load(), form=request.form if errors else None), status


