"""Services of the organisation chart: the tree rules, holding from above, capabilities,
deactivation, workload, bad input, and the snapshot's query count."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.core import services as core
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.models import User
from app.extensions import db
from app.orgchart import chart as charts
from app.orgchart import services
from app.orgchart.models import Assignment, Capability, Post, Unit
from tests.orgchart import assign, build_chart, row_counts, staff

# See tests/orgchart/test_api.py: app/orgchart/api.py makes create_app warn (a defect pinned there).
# Seller B and the whole Communications division are left vacant.
STAFF = {"ceo": "Carla Ceo", "head_sales": "Hugo Sales", "head_direct": "Dora Direct",
         "seller_a": "Sam Seller", "head_key": "Kira Key", "key_seller": "Kurt Keyseller",
         "head_finance": "Fiona Finance", "head_disb": "Dan Disb", "cashier": "Cass Cashier"}


@pytest.fixture
def chart(admin):
    return build_chart(admin)


@pytest.fixture
def people(admin, make_user, chart):
    return staff(admin, make_user, chart, STAFF)


def ids(users) -> list[int]:
    return [u.id for u in users]


def live_assignment(user, post) -> Assignment:
    return db.session.scalar(select(Assignment).where(
        Assignment.user_id == user.id, Assignment.post_id == post.id, Assignment.ended_at.is_(None)))


# --- superiors and subordinates ---------------------------------------------------------------

def test_superiors_run_up_through_units_and_posts(chart, people):
    p = people
    assert ids(services.superiors_of(p.key_seller)) == ids([p.head_key, p.head_direct,
                                                            p.head_sales, p.ceo])
    assert ids(services.superiors_of(p.head_key)) == ids([p.head_direct, p.head_sales, p.ceo])
    assert ids(services.superiors_of(p.cashier)) == ids([p.head_disb, p.head_finance, p.ceo])
    assert services.superiors_of(p.ceo) == []


def test_subordinates_run_down_through_units_and_posts(chart, people):
    p = people
    assert set(ids(services.subordinates_of(p.head_sales))) == set(ids(
        [p.head_direct, p.seller_a, p.head_key, p.key_seller]))
    assert set(ids(services.subordinates_of(p.head_direct))) == set(ids(
        [p.seller_a, p.head_key, p.key_seller]))
    assert ids(services.subordinates_of(p.head_key)) == [p.key_seller.id]
    assert services.subordinates_of(p.seller_a) == []
    assert services.subordinates_of(p.key_seller) == []
    everyone_else = {u.id for u in vars(p).values()} - {p.ceo.id}
    assert set(ids(services.subordinates_of(p.ceo))) == everyone_else


def test_superiors_skip_a_vacant_head_to_the_holder_above(admin, chart, people):
    p = people
    services.end_assignment(admin, live_assignment(p.head_key, chart.posts.head_key).id)
    db.session.commit()
    # the section head is vacant, held by the department head: no one new appears
    assert ids(services.superiors_of(p.key_seller)) == ids([p.head_direct, p.head_sales, p.ceo])


def test_can_manage_follows_the_chart(admin, chart, people):
    p = people
    assert services.can_manage(p.head_direct, p.seller_a)
    assert services.can_manage(p.head_direct, p.key_seller)  # a section below the department
    assert services.can_manage(p.ceo, p.cashier)
    assert not services.can_manage(p.head_direct, p.head_sales)
    assert not services.can_manage(p.head_direct, p.cashier)  # another division
    assert not services.can_manage(p.seller_a, p.head_direct)
    assert not services.can_manage(p.head_key, p.seller_a)  # a sibling in the unit above
    assert services.can_manage(admin, p.head_sales)


def test_a_person_holding_a_vacant_head_from_above_manages_its_people(admin, chart, people):
    p = people
    services.end_assignment(admin, live_assignment(p.head_direct, chart.posts.head_direct).id)
    db.session.commit()
    assert services.can_manage(p.head_sales, p.seller_a)
    assert not services.can_manage(p.head_direct, p.seller_a)
    assert ids(services.superiors_of(p.seller_a)) == ids([p.head_sales, p.ceo])


# --- holding from above -----------------------------------------------------------------------

def test_a_held_post_is_held_by_its_own_holders(chart, people, admin, make_user):
    holding = services.holders_of(chart.posts.seller_a)
    assert ids(holding.users) == [people.seller_a.id]
    assert holding.from_post is None and not holding.vacant
    second = make_user("Second Seller")
    assign(admin, chart.posts.seller_a, second)
    assert set(ids(services.holders_of(chart.posts.seller_a.id).users)) == {people.seller_a.id,
                                                                          second.id}


def test_a_vacant_post_is_held_by_the_nearest_holder_above(chart, people):
    holding = services.holders_of(chart.posts.seller_b)
    assert holding.vacant
    assert ids(holding.users) == [people.head_direct.id]
    assert holding.from_post.id == chart.posts.head_direct.id


def test_a_vacant_department_head_is_held_by_the_division_head(admin, chart, people):
    services.end_assignment(admin, live_assignment(people.head_direct, chart.posts.head_direct).id)
    db.session.commit()
    holding = services.holders_of(chart.posts.head_direct)
    assert ids(holding.users) == [people.head_sales.id]
    assert holding.from_post.id == chart.posts.head_sales.id
    # the vacant post under the vacant head goes up the same way
    assert ids(services.holders_of(chart.posts.seller_b).users) == [people.head_sales.id]


def test_a_chain_of_vacancies_is_held_by_the_first_holder_above(admin, chart, people):
    p = people
    for user, key in ((p.key_seller, "key_seller"), (p.head_key, "head_key"),
                      (p.head_direct, "head_direct"), (p.head_sales, "head_sales")):
        services.end_assignment(admin, live_assignment(user, getattr(chart.posts, key)).id)
    db.session.commit()
    for key in ("key_seller", "head_key", "head_direct", "head_sales", "seller_b"):
        holding = services.holders_of(getattr(chart.posts, key))
        assert ids(holding.users) == [p.ceo.id], key
        assert holding.from_post.id == chart.posts.ceo.id, key
    # a whole vacant division is held by the company head as well
    assert ids(services.holders_of(chart.posts.head_routing).users) == [p.ceo.id]
    # the one held post in between still has its own holder
    assert ids(services.holders_of(chart.posts.seller_a).users) == [p.seller_a.id]


def test_a_vacant_top_post_has_no_holders(chart):
    holding = services.holders_of(chart.posts.chart_keeper)
    assert holding.users == () and holding.vacant


def test_holders_of_an_unknown_or_archived_post_is_not_found(admin, chart):
    with pytest.raises(NotFound):
        services.holders_of(10_000_000)
    services.archive_post(admin, chart.posts.seller_b.id)
    db.session.commit()
    with pytest.raises(NotFound):
        services.holders_of(chart.posts.seller_b.id)


# --- capabilities -----------------------------------------------------------------------------

def test_capability_with_amounts_gives_the_largest(admin, chart, people, make_user):
    p = people
    services.set_capability(admin, chart.posts.head_finance.id,
                            {"name": "approve_expenses", "amount": "1000.50", "currency": "usd"})
    services.set_capability(admin, chart.posts.cashier.id,
                            {"name": "approve_expenses", "amount": "200", "currency": "USD"})
    db.session.commit()
    cap = db.session.scalar(select(Capability).where(Capability.post_id == chart.posts.head_finance.id))
    assert (cap.amount_minor, cap.currency) == (100050, "USD")
    assert services.capability(p.cashier, "approve_expenses") == services.Grant(
        "approve_expenses", 20000, "USD")
    # one person on both posts gets the larger amount
    assign(admin, chart.posts.cashier, p.head_finance)
    assert services.capability(p.head_finance, "approve_expenses") == services.Grant(
        "approve_expenses", 100050, "USD")
    # a currency filter picks the largest in that currency
    assign(admin, chart.posts.head_key, p.head_finance)
    services.set_capability(admin, chart.posts.head_key.id,
                            {"name": "approve_expenses", "amount": "50", "currency": "EUR"})
    db.session.commit()
    assert services.capability(p.head_finance, "approve_expenses", "EUR").amount_minor == 5000
    assert services.capability(p.head_finance, "approve_expenses", "USD").amount_minor == 100050
    assert services.capability(p.head_finance, "approve_expenses", "GBP") is None
    # raising the amount on the post later is seen at once
    services.set_capability(admin, chart.posts.cashier.id,
                            {"name": "approve_expenses", "amount": "5000", "currency": "USD"})
    db.session.commit()
    assert services.capability(p.head_finance, "approve_expenses", "USD").amount_minor == 500000
    assert services.capability(p.seller_a, "approve_expenses") is None
    assert services.capability(p.cashier, "pay") is None


def test_a_capability_follows_the_post_when_it_changes_hands(admin, chart, people, make_user):
    old = people.cashier
    services.set_capability(admin, chart.posts.cashier.id, {"name": "pay"})
    db.session.commit()
    assert services.capability(old, "pay") == services.Grant("pay")
    services.end_assignment(admin, live_assignment(old, chart.posts.cashier).id)
    new = make_user("Nina New")
    assign(admin, chart.posts.cashier, new)
    assert services.capability(new, "pay") == services.Grant("pay")
    assert services.capability(old, "pay") is None
    # the capability row itself never moved: it still belongs to the post
    caps = db.session.scalars(select(Capability).where(Capability.name == "pay")).all()
    assert [c.post_id for c in caps] == [chart.posts.cashier.id]


def test_the_capability_of_a_vacant_post_goes_to_the_holder_above(admin, chart, people):
    p = people
    services.set_capability(admin, chart.posts.cashier.id, {"name": "pay"})
    services.end_assignment(admin, live_assignment(p.cashier, chart.posts.cashier).id)
    db.session.commit()
    assert services.capability(p.head_disb, "pay") is not None
    assert services.capability(p.cashier, "pay") is None
    assert services.capability(p.head_finance, "pay") is None  # the nearest holder only
    services.end_assignment(admin, live_assignment(p.head_disb, chart.posts.head_disb).id)
    db.session.commit()
    assert services.capability(p.head_finance, "pay") is not None
    assert services.capability(p.head_disb, "pay") is None
    assert services.capability(p.head_sales, "pay") is None


def test_holding_a_post_with_administer_makes_one_an_administrator(admin, chart, people):
    p = people
    assert not core.is_admin(p.seller_a)
    services.set_capability(admin, chart.posts.seller_a.id, {"name": "administer"})
    db.session.commit()
    assert core.is_admin(p.seller_a)
    assert services.can_manage(p.seller_a, p.ceo)
    assert not core.is_admin(p.key_seller)
    services.end_assignment(admin, live_assignment(p.seller_a, chart.posts.seller_a).id)
    db.session.commit()
    assert not core.is_admin(p.seller_a)


# --- scope ----------------------------------------------------------------------------------

def test_scope_is_the_units_at_and_below_the_posts_held(admin, chart, people):
    u, p = chart.units, people
    assert services.scope_of(p.head_sales) == {u.sales.id, u.direct.id, u.key.id}
    assert services.scope_of(p.head_direct) == {u.direct.id, u.key.id}
    assert services.scope_of(p.seller_a) == {u.direct.id}
    assert services.scope_of(p.head_key) == {u.key.id}
    all_units = {x.id for x in vars(u).values()}
    assert services.scope_of(p.ceo) == all_units
    assert services.scope_of(admin) == set()
    # a vacant division head adds that division to the scope of the company head only
    assert not services.can_see_all(p.head_sales)
    assert services.can_see_all(p.ceo)


# --- deactivation -----------------------------------------------------------------------------

def test_a_deactivated_person_leaves_their_posts_and_nothing_is_deleted(admin, chart, people):
    p = people
    assign(admin, chart.posts.seller_b, p.head_direct)
    services.set_capability(admin, chart.posts.head_direct.id, {"name": "pay"})
    db.session.commit()
    before = row_counts()
    core.set_active(admin, p.head_direct, False)
    db.session.commit()
    after = row_counts()
    assert {k: after[k] for k in ("Unit", "Post", "Assignment", "Capability")} == \
        {k: before[k] for k in ("Unit", "Post", "Assignment", "Capability")}
    assert after["AuditEvent"] > before["AuditEvent"]
    rows = db.session.scalars(select(Assignment).where(Assignment.user_id == p.head_direct.id)).all()
    assert len(rows) == 2 and all(r.ended_at is not None for r in rows)
    assert db.session.get(User, p.head_direct.id) is not None
    # the posts are now held from above
    for key in ("head_direct", "seller_b"):
        holding = services.holders_of(getattr(chart.posts, key))
        assert ids(holding.users) == [p.head_sales.id], key
        assert holding.from_post.id == chart.posts.head_sales.id
    assert ids(services.superiors_of(p.seller_a)) == ids([p.head_sales, p.ceo])
    assert p.head_direct.id not in ids(services.subordinates_of(p.head_sales))
    assert services.capability(p.head_sales, "pay") is not None  # the post's, from above
    assert services.capability(p.head_direct, "pay") is None
    assert services.scope_of(p.head_direct) == set()
    assert services.subordinates_of(p.head_direct) == []


# --- workload ---------------------------------------------------------------------------------

def _rows(rows) -> dict[int, object]:
    return {r.id: r for r in rows}


def test_workload_rows_and_flags_follow_the_thresholds(admin, chart, people):
    p = people
    for user, key in ((p.head_finance, "head_finance"), (p.head_disb, "head_disb"),
                      (p.cashier, "cashier")):
        services.end_assignment(admin, live_assignment(user, getattr(chart.posts, key)).id)
    services.set_thresholds(admin, {"overloaded_at": 3, "underloaded_at": 2})
    db.session.commit()
    assert services.thresholds() == {"overloaded_at": 3, "underloaded_at": 2}
    users, posts = services.workload(p.ceo)
    rows = _rows(users)
    # CEO: own post, the vacant Finance (3 posts) and Communications (3 posts)
    assert rows[p.ceo.id].load == 7 and rows[p.ceo.id].flag == "overloaded"
    assert rows[p.ceo.id].parts == {"posts_held": 7}
    assert rows[p.head_direct.id].load == 2 and rows[p.head_direct.id].flag is None  # + Seller B
    assert rows[p.seller_a.id].load == 1 and rows[p.seller_a.id].flag == "underloaded"
    assert [r.id for r in users][0] == p.ceo.id  # the heaviest first
    assert p.cashier.id not in rows  # left every post: no longer on the chart
    assert {r.id for r in posts} == {x.id for x in vars(chart.posts).values()}
    # the mail counts open requests per post: none yet, so every post is under the threshold
    assert all(r.load == 0 and r.flag == "underloaded" for r in posts)
    services.set_thresholds(admin, {"overloaded_at": 10, "underloaded_at": 0})
    db.session.commit()
    rows = _rows(services.workload(p.ceo)[0])
    assert rows[p.ceo.id].flag is None and rows[p.seller_a.id].flag is None


def test_thresholds_must_be_in_order(admin):
    before = services.thresholds()
    with pytest.raises(ValidationError) as exc:
        services.set_thresholds(admin, {"overloaded_at": 3, "underloaded_at": 5})
    assert "underloaded_at" in exc.value.fields
    assert services.thresholds() == before


def test_a_manager_sees_only_their_subordinates(chart, people):
    p = people
    users, posts = services.workload(p.head_direct)
    assert {r.id for r in users} == {p.head_direct.id, p.seller_a.id, p.head_key.id,
                                     p.key_seller.id}
    c = chart.posts
    assert {r.id for r in posts} == {c.head_direct.id, c.seller_a.id, c.seller_b.id,
                                     c.head_key.id, c.key_seller.id}
    users, posts = services.workload(p.seller_a)
    assert [r.id for r in users] == [p.seller_a.id]
    assert [r.id for r in posts] == [c.seller_a.id]


def test_an_executive_sees_everyone(chart, people, admin):
    everyone = {u.id for u in vars(people).values()}
    users, posts = services.workload(people.ceo)
    assert {r.id for r in users} == everyone
    assert len(posts) == len(vars(chart.posts))
    assert {r.id for r in services.workload(admin)[0]} == everyone


def test_a_registered_provider_adds_to_the_load(admin, chart, people):
    p = people
    asked: dict[str, list] = {}

    def by_user(user_ids):
        asked["users"] = sorted(user_ids)
        return {p.seller_a.id: 7, p.cashier.id: 100}

    def by_post(post_ids):
        asked["posts"] = sorted(post_ids)
        return {chart.posts.seller_b.id: 20, chart.posts.cashier.id: 3}

    services.set_thresholds(admin, {"overloaded_at": 15, "underloaded_at": 2})
    services.register_workload_provider("test_tasks", "Open tasks", by_user=by_user, by_post=by_post)
    try:
        users, posts = services.workload(p.head_direct)
        rows, post_rows = _rows(users), _rows(posts)
        assert rows[p.seller_a.id].load == 8
        assert rows[p.seller_a.id].parts == {"posts_held": 1, "test_tasks": 7}
        assert rows[p.seller_a.id].flag is None
        assert rows[p.head_key.id].load == 1 and rows[p.head_key.id].flag == "underloaded"
        assert p.cashier.id not in rows  # the provider's answer outside the view is dropped
        assert asked["users"] == sorted(rows)
        assert post_rows[chart.posts.seller_b.id].load == 20
        assert post_rows[chart.posts.seller_b.id].flag == "overloaded"
        assert post_rows[chart.posts.seller_a.id].load == 0
        assert post_rows[chart.posts.seller_a.id].flag == "underloaded"
        assert chart.posts.cashier.id not in post_rows
        assert asked["posts"] == sorted(post_rows)
        assert users[0].id == p.seller_a.id and posts[0].id == chart.posts.seller_b.id
    finally:
        services._providers.pop("test_tasks", None)
    assert "test_tasks" not in {pr.key for pr in services.providers()}


# --- bad input: a clear error and nothing changed ---------------------------------------------

def test_a_unit_cannot_move_under_itself_or_a_descendant(admin, chart):
    u = chart.units
    before = row_counts()
    for target in (u.sales, u.direct, u.key):
        with pytest.raises(ValidationError) as exc:
            services.update_unit(admin, u.sales.id, {"parent_id": target.id, "name": "Moved"})
        assert "parent_id" in exc.value.fields
    assert row_counts() == before
    assert (u.sales.parent_id, u.sales.name) == (u.company.id, "Sales")
    assert db.session.scalar(select(Unit.parent_id).where(Unit.id == u.sales.id)) == u.company.id
    # moving to a real place works
    services.update_unit(admin, u.key.id, {"parent_id": u.disb.id})
    db.session.commit()
    assert [x.id for x in charts.load().path(u.key.id)] == [u.company.id, u.finance.id,
                                                            u.disb.id, u.key.id]


def test_a_post_cannot_go_into_an_archived_unit(admin, chart):
    services.archive_unit(admin, chart.units.routing.id)
    db.session.commit()
    before = row_counts()
    with pytest.raises(ValidationError) as exc:
        services.create_post(admin, {"unit_id": chart.units.routing.id, "title": "Ghost"})
    assert "unit_id" in exc.value.fields
    with pytest.raises(ValidationError) as exc:
        services.update_post(admin, chart.posts.seller_a.id, {"unit_id": chart.units.routing.id})
    assert "unit_id" in exc.value.fields
    assert row_counts() == before
    assert chart.posts.seller_a.unit_id == chart.units.direct.id
    assert db.session.scalar(select(Post).where(Post.title == "Ghost")) is None


def test_a_deactivated_account_cannot_be_assigned(admin, chart, make_user):
    gone = make_user("Gone Person")
    core.set_active(admin, gone, False)
    db.session.commit()
    before = row_counts()
    with pytest.raises(ValidationError) as exc:
        services.assign(admin, {"post_id": chart.posts.seller_b.id, "user_id": gone.id})
    assert "user_id" in exc.value.fields
    assert row_counts() == before
    assert services.holders_of(chart.posts.seller_b).users == ()


def test_one_head_per_unit_on_create(admin, chart):
    before = row_counts()
    with pytest.raises(Conflict) as exc:
        services.create_post(admin, {"unit_id": chart.units.direct.id, "title": "Co-head",
                                     "is_head": True})
    assert "is_head" in exc.value.fields and "Head of Direct" in exc.value.message
    assert row_counts() == before


def test_one_head_per_unit_on_update(admin, chart):
    before = row_counts()
    with pytest.raises(Conflict) as exc:
        services.update_post(admin, chart.posts.seller_a.id, {"is_head": True, "title": "Boss"})
    assert "is_head" in exc.value.fields
    # moving a head post into a unit that has a head is the same conflict
    with pytest.raises(Conflict):
        services.update_post(admin, chart.posts.head_key.id, {"unit_id": chart.units.direct.id})
    assert row_counts() == before
    assert (chart.posts.seller_a.is_head, chart.posts.seller_a.title) == (False, "Seller A")
    assert chart.posts.head_key.unit_id == chart.units.key.id
    assert charts.load().head[chart.units.direct.id].id == chart.posts.head_direct.id


@pytest.mark.parametrize(("data", "field"), [
    ({"name": "approve_expenses", "amount": "-0.01", "currency": "USD"}, "amount"),
    ({"name": "approve_expenses", "amount": "100", "currency": "ZZQ"}, "currency"),
    ({"name": "approve_expenses", "amount": "100"}, "currency"),
    ({"name": "approve_expenses", "currency": "USD"}, "amount"),
    ({"name": "fly_to_the_moon"}, "name"),
    ({"name": "approve_expenses", "amount": "lots", "currency": "USD"}, "amount"),
])
def test_bad_capabilities_are_refused(admin, chart, data, field):
    services.set_capability(admin, chart.posts.cashier.id,
                            {"name": "approve_expenses", "amount": "10", "currency": "USD"})
    db.session.commit()
    before = row_counts()
    with pytest.raises(ValidationError) as exc:
        services.set_capability(admin, chart.posts.cashier.id, data)
    assert field in exc.value.fields
    assert row_counts() == before
    cap = db.session.scalar(select(Capability).where(Capability.post_id == chart.posts.cashier.id))
    assert (cap.name, cap.amount_minor, cap.currency) == ("approve_expenses", 1000, "USD")


def test_capabilities_without_money_carry_no_amount(admin, chart):
    for data in ({"name": "pay", "amount": "-5", "currency": "USD"}, {"name": "pay", "amount": "5"}):
        cap = services.set_capability(admin, chart.posts.cashier.id, data)
        assert (cap.name, cap.amount_minor, cap.currency) == ("pay", None, None)


def test_only_a_company_stands_at_the_top(admin, chart):
    before = row_counts()
    with pytest.raises(ValidationError):
        services.create_unit(admin, {"kind": "division", "name": "Floating"})
    with pytest.raises(ValidationError):
        services.update_unit(admin, chart.units.sales.id, {"parent_id": None})
    assert row_counts() == before
    assert chart.units.sales.parent_id == chart.units.company.id


def test_the_top_company_cannot_become_a_division(admin, chart):
    before = row_counts()
    with pytest.raises(ValidationError):
        services.update_unit(admin, chart.units.company.id, {"kind": "division"})
    assert row_counts() == before
    assert chart.units.company.kind == "company"


# --- query count --------------------------------------------------------------------------

def _bulk_chart(divisions: int, departments: int, sections: int, extra: int, people: int):
    """A generated chart inserted in bulk: every unit has a head post and `extra` posts;
    every third post stays vacant; `people` persons fill the rest in order."""
    tag = uuid.uuid4().hex[:6]
    units, posts = [], []

    def unit(kind, name, parent):
        u = Unit(kind=kind, name=name, parent=parent, position=len(units))
        units.append(u)
        posts.append(Post(unit=u, title=f"Head of {name}", is_head=True))
        posts.extend(Post(unit=u, title=f"{name} post {i}", position=i + 1) for i in range(extra))
        return u

    company = unit("company", f"Gen {tag}", None)
    for d in range(divisions):
        division = unit("division", f"Division {d}", company)
        for e in range(departments):
            department = unit("department", f"Department {d}.{e}", division)
            for s in range(sections):
                unit("section", f"Section {d}.{e}.{s}", department)
    users = [User(email=f"gen-{tag}-{i}@example.test", name=f"Gen {i:03}", password_hash="x")
             for i in range(people)]
    held = [post for i, post in enumerate(posts) if i % 3 != 1][:people]
    assignments = [Assignment(post=post, user=user) for post, user in zip(held, users, strict=False)]
    db.session.add_all([*units, *posts, *users, *assignments])
    db.session.commit()
    return units, posts, users


def _measure(count_queries) -> tuple[int, charts.Chart]:
    db.session.expire_all()
    charts.forget()
    with count_queries() as statements:
        chart = charts.load()
        holdings = [chart.holding(post) for post in chart.posts.values()]
        for uid in chart.people():
            chart.subordinates_of(uid)
        for holding in holdings:  # touch who holds each post, as a page would
            _ = [u.name for u in holding.users]
    return len(statements), chart


def test_the_snapshot_costs_the_same_queries_for_a_small_and_a_big_chart(count_queries):
    _bulk_chart(1, 1, 1, 1, 5)
    small, small_chart = _measure(count_queries)
    assert len(small_chart.posts) == 8 and len(small_chart.people()) == 5
    units, posts, users = _bulk_chart(8, 4, 2, 2, 200)
    big, big_chart = _measure(count_queries)
    assert len(units) == 105 and len(big_chart.posts) >= 300
    assert len(big_chart.people()) == 205
    vacant = [p for p in big_chart.posts.values() if big_chart.holding(p).from_post is not None]
    assert len(vacant) > 50
    assert big == small and big <= 4
    # and the answers are right: a division head has everyone below them
    division = next(u for u in units if u.kind == "division")
    below = set(big_chart.subtree(division.id))
    expected = {a.user_id for pid, lst in big_chart.own.items() for a in lst
                if big_chart.posts[pid].unit_id in below}
    head_holders = big_chart.own[big_chart.head[division.id].id]
    assert len(head_holders) == 1
    head = head_holders[0].user
    assert {u.id for u in big_chart.subordinates_of(head.id)} == expected - {head.id}


def test_a_chart_editor_cannot_make_themselves_administrator(admin, chart, make_user):
    from app.core.errors import PermissionDenied

    editor = make_user("Hera Editor")
    post = chart.posts.cashier
    services.set_capability(admin, post.id, {"name": "manage_chart"})
    services.assign(admin, {"post_id": post.id, "user_id": editor.id})
    db.session.commit()
    assert services.can_edit_chart(editor) and not core.is_admin(editor)
    before = row_counts()
    for attempt in (
        lambda: services.set_capability(editor, post.id, {"name": "administer"}),
        lambda: services.set_capability(editor, post.id, {"name": "manage_chart"}),
        lambda: services.remove_capability(editor, post.id, "manage_chart"),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
        db.session.rollback()
    services.set_capability(admin, chart.posts.head_direct.id, {"name": "administer"})
    db.session.commit()
    with pytest.raises(PermissionDenied):
        services.assign(editor, {"post_id": chart.posts.head_direct.id, "user_id": editor.id})
    db.session.rollback()
    assert not core.is_admin(editor)
    assert row_counts()["Assignment"] == before["Assignment"]
    assert not services.can_see_all(editor)  # editing the chart is not seeing everyone's load


def test_amounts_follow_the_currency_and_are_bounded(admin, chart):
    cap = services.set_capability(admin, chart.posts.cashier.id,
                                  {"name": "approve_expenses", "amount": "1000", "currency": "JPY"})
    assert cap.amount_minor == 1000  # yen have no minor unit
    with pytest.raises(ValidationError) as exc:
        services.set_capability(admin, chart.posts.cashier.id, {
            "name": "approve_expenses", "amount": "100000000000000000000", "currency": "RUB"})
    assert "amount" in exc.value.fields


def test_a_unit_name_cannot_hold_the_path_separator(admin, chart):
    with pytest.raises(ValidationError) as exc:
        services.create_unit(admin, {"kind": "department", "name": "R&D / QA",
                                     "parent_id": chart.units.company.id})
    assert "name" in exc.value.fields
