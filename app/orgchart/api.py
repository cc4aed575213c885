"""JSON API of the chart: units, posts, assignments (list, create, update, archive), workload."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from app.core.api_base import api_blueprint, api_user
from app.orgchart import chart as charts
from app.orgchart import services
from app.orgchart.schemas import (
    AssignmentIn,
    AssignmentOut,
    AssignmentUpdate,
    PostIn,
    PostOut,
    PostPatch,
    UnitIn,
    UnitOut,
    UnitPatch,
    WorkloadRow,
)

units_api = api_blueprint("org_units_api", __name__, "/orgchart/units", "Units of the chart")
posts_api = api_blueprint("org_posts_api", __name__, "/orgchart/posts", "Posts")
assignments_api = api_blueprint("org_assignments_api", __name__, "/orgchart/assignments",
                                "People on posts")
workload_api = api_blueprint("org_workload_api", __name__, "/orgchart/workload", "Workload")


class HolderOut(Schema):
    id = fields.Integer()
    name = fields.String()


class PostWithHolders(PostOut):
    holders = fields.List(fields.Nested(HolderOut))
    held_from_above_by_post_id = fields.Integer(allow_none=True)


class WorkloadOut(Schema):
    people = fields.List(fields.Nested(WorkloadRow))
    posts = fields.List(fields.Nested(WorkloadRow))
    thresholds = fields.Dict(keys=fields.String(), values=fields.Integer())


@units_api.route("")
class Units(MethodView):
    @units_api.response(200, UnitOut(many=True))
    def get(self):
        """Every live unit (everyone may see the chart)."""
        chart = charts.load()
        return sorted(chart.units.values(), key=lambda u: (u.parent_id or 0, u.position, u.id))

    @units_api.arguments(UnitIn)
    @units_api.response(201, UnitOut)
    def post(self, data):
        return services.create_unit(api_user(), data)


@units_api.route("/<int:unit_id>")
class UnitItem(MethodView):
    @units_api.response(200, UnitOut)
    def get(self, unit_id):
        return services.get_unit(unit_id)

    @units_api.arguments(UnitPatch(partial=True))
    @units_api.response(200, UnitOut)
    def patch(self, data, unit_id):
        """Rename, renumber, reorder or move."""
        return services.update_unit(api_user(), unit_id, data)

    @units_api.response(200, UnitOut)
    def delete(self, unit_id):
        """Archive the unit with everything below it."""
        return services.archive_unit(api_user(), unit_id)


def _with_holders(post):
    holding = charts.load().holding(post)
    post.holders = list(holding.users)
    post.held_from_above_by_post_id = holding.from_post.id if holding.from_post else None
    return post


@posts_api.route("")
class Posts(MethodView):
    @posts_api.response(200, PostWithHolders(many=True))
    def get(self):
        """Every live post with who holds it (or from above)."""
        chart = charts.load()
        return [_with_holders(p) for p in sorted(chart.posts.values(), key=lambda p: p.id)]

    @posts_api.arguments(PostIn)
    @posts_api.response(201, PostOut)
    def post(self, data):
        return services.create_post(api_user(), data)


@posts_api.route("/<int:post_id>")
class PostItem(MethodView):
    @posts_api.response(200, PostWithHolders)
    def get(self, post_id):
        services.get_post(post_id)
        return _with_holders(charts.load().posts[post_id])

    @posts_api.arguments(PostPatch(partial=True))
    @posts_api.response(200, PostOut)
    def patch(self, data, post_id):
        return services.update_post(api_user(), post_id, data)

    @posts_api.response(200, PostOut)
    def delete(self, post_id):
        """Archive the post; its holders leave it."""
        return services.archive_post(api_user(), post_id)


@assignments_api.route("")
class Assignments(MethodView):
    @assignments_api.response(200, AssignmentOut(many=True))
    def get(self):
        """Live assignments."""
        return charts.load().assignments

    @assignments_api.arguments(AssignmentIn)
    @assignments_api.response(201, AssignmentOut)
    def post(self, data):
        return services.assign(api_user(), data)


@assignments_api.route("/<int:assignment_id>")
class AssignmentItem(MethodView):
    @assignments_api.arguments(AssignmentUpdate)
    @assignments_api.response(200, AssignmentOut)
    def patch(self, data, assignment_id):
        """Mark or unmark the holder as acting."""
        return services.update_assignment(api_user(), assignment_id, data)

    @assignments_api.response(200, AssignmentOut)
    def delete(self, assignment_id):
        """End the assignment (the history stays)."""
        return services.end_assignment(api_user(), assignment_id)


@workload_api.route("")
@workload_api.response(200, WorkloadOut)
def workload():
    """Load of the people and posts the caller may see, with flags."""
    people, posts = services.workload(api_user())
    return {"people": people, "posts": posts, "thresholds": services.thresholds()}


ALL = [units_api, posts_api, assignments_api, workload_api]
