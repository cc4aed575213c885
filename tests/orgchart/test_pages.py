"""The chart's pages: board, post, person, editing forms, template, workload."""

from __future__ import annotations

import re

from sqlalchemy import func, insert, select

from app.core.models import User
from app.core.passwords import hash_password
from app.orgchart import chart as charts
from app.orgchart import services
from app.orgchart.models import Assignment, Post, Unit


def post_titled(title: str) -> Post:
    return next(p for p in charts.load().posts.values() if p.title == title)


def test_board_shows_divisions_holders_and_vacancies(user_client, admin, acme, make_user, db):
    boss = make_user("Sergei Boss")
    services.assign(admin, {"post_id": post_titled("Head of the Dissemination division").id,
                            "user_id": boss.id})
    seller = make_user("Sasha Seller")
    services.assign(admin, {"post_id": post_titled("Sales manager").id, "user_id": seller.id})
    db.session.commit()
    page = user_client.get("/org/").get_data(as_text=True)
    divisions = re.findall(r'data-testid="division".*?division-number">(\d)<', page, re.S)
    assert divisions == ["7", "1", "2", "3", "4", "5", "6"]
    assert "Sasha Seller" in page and "Sergei Boss" in page
    # Head of Sales is vacant: held from above by the division head
    head_of_sales = page.split("Head of Sales</a>")[1][:600]
    assert "vacant" in head_of_sales and "Sergei Boss" in head_of_sales


def test_zoom_and_printable_view(user_client, acme):
    finance = next(u for u in charts.load().units.values() if u.name == "Finance")
    page = user_client.get(f"/org/?unit={finance.id}").get_data(as_text=True)
    assert "Cashier" in page and "Sales manager" not in page
    printable = user_client.get(f"/org/?unit={finance.id}&print=1").get_data(as_text=True)
    assert 'class="printing"' in printable
    assert user_client.get("/org/?unit=999999").status_code == 404


def test_post_page(user_client, admin, acme, make_user, db):
    p = post_titled("Cashier")
    services.update_post(admin, p.id, {"product": "Bills paid on time", "duties": "Pay"})
    services.set_capability(admin, p.id, {"name": "pay"})
    holder = make_user("Katya Cash")
    services.assign(admin, {"post_id": p.id, "user_id": holder.id, "acting": True})
    db.session.commit()
    page = user_client.get(f"/org/posts/{p.id}").get_data(as_text=True)
    assert "Bills paid on time" in page and "Katya Cash" in page and "acting" in page
    assert "Head of Disbursements" in page  # answers to
    assert "Pay approved expenses" in page
    assert "Put a person on the post" not in page  # an employee cannot edit
    assert user_client.get("/org/posts/999999").status_code == 404


def test_person_page(user_client, admin, acme, make_user, db):
    head = make_user("Fyodor Head")
    clerk = make_user("Clara Clerk")
    services.assign(admin, {"post_id": post_titled("Head of the Finance division").id,
                            "user_id": head.id})
    services.assign(admin, {"post_id": post_titled("Cashier").id, "user_id": clerk.id})
    db.session.commit()
    page = user_client.get(f"/org/people/{head.id}").get_data(as_text=True)
    assert "Head of the Finance division" in page and "Clara Clerk" in page
    assert "Head of Disbursements" in page  # held from above (vacant)
    clerk_page = user_client.get(f"/org/people/{clerk.id}").get_data(as_text=True)
    assert "Fyodor Head" in clerk_page.split("Superiors")[1]


def test_admin_edits_the_chart_through_pages(admin_client, acme, make_user, db):
    before = db.session.scalar(select(func.count(Unit.id)))
    admin_client.form("/org/units", {"kind": "section", "name": "Key accounts",
                                     "parent_id": str(post_titled("Sales manager").unit_id)})
    assert db.session.scalar(select(func.count(Unit.id))) == before + 1
    section = db.session.scalar(select(Unit).where(Unit.name == "Key accounts"))
    resp = admin_client.form("/org/posts", {"unit_id": str(section.id), "title": "Key account manager"})
    post = db.session.scalar(select(Post).where(Post.title == "Key account manager"))
    assert resp.headers["Location"].endswith(f"/org/posts/{post.id}")
    person = make_user("Kira Key")
    admin_client.form(f"/org/posts/{post.id}/holders", {"user_id": str(person.id)})
    assert [a.user_id for a in db.session.scalars(select(Assignment).where(
        Assignment.post_id == post.id))] == [person.id]
    admin_client.form(f"/org/units/{section.id}", {"name": "Key clients", "position": "3"})
    assert section.name == "Key clients"
    # moving a unit under itself is refused and changes nothing
    company_id = acme.id
    admin_client.form(f"/org/units/{company_id}", {"parent_id": str(section.id)})
    assert db.session.get(Unit, company_id).parent_id is None
    page = admin_client.get("/org/manage").get_data(as_text=True)
    assert "cannot move under itself" in page
    admin_client.form(f"/org/units/{section.id}/archive", {})
    assert section.archived_at is not None and post.archived_at is not None


def test_employee_cannot_edit_the_chart(user_client, acme, db):
    count = db.session.scalar(select(func.count(Unit.id)))
    assert user_client.get("/org/manage").status_code == 403
    assert user_client.form("/org/units", {"kind": "division", "name": "X",
                                           "parent_id": str(acme.id)}).status_code == 403
    assert db.session.scalar(select(func.count(Unit.id))) == count


def test_template_from_the_page_in_russian(admin_client, db):
    resp = admin_client.form("/org/template", {"company": "Ромашка", "language": "ru"})
    assert resp.status_code == 302
    names = set(db.session.scalars(select(Unit.name)))
    assert {"Ромашка", "Отделение распространения", "Отдел продаж"} <= names


def test_workload_page_and_thresholds(admin_client, user_client, admin, acme, user, db):
    services.assign(admin, {"post_id": post_titled("Cashier").id, "user_id": user.id})
    db.session.commit()
    page = user_client.get("/org/workload").get_data(as_text=True)
    assert "Ivan Petrov" in page and "underloaded" in page  # 1 post < 2
    resp = admin_client.form("/org/workload", {"overloaded_at": "3", "underloaded_at": "5"})
    assert resp.status_code == 422
    admin_client.form("/org/workload", {"overloaded_at": "3", "underloaded_at": "1"})
    assert services.thresholds() == {"overloaded_at": 3, "underloaded_at": 1}
    assert user_client.form("/org/workload", {"overloaded_at": "9",
                                              "underloaded_at": "1"}).status_code == 403


def _generate(db, divisions: int, departments: int, posts_per: int, people: int) -> None:
    """A big chart written in bulk: company, divisions, departments, posts, holders."""
    hashed = hash_password("generated-pass-1")
    db.session.execute(insert(User), [
        {"email": f"gen{i}-{divisions}@example.test", "name": f"Gen {i}", "password_hash": hashed,
         "language": "en", "timezone": "UTC", "active": True, "is_admin": False,
         "session_version": 1} for i in range(people)])
    user_ids = list(db.session.scalars(select(User.id).where(User.email.like(f"gen%-{divisions}@%"))))
    company = Unit(kind="company", name=f"Gen {divisions}")
    db.session.add(company)
    db.session.flush()
    db.session.add(Post(unit_id=company.id, title="CEO", is_head=True))
    units = []
    for d in range(divisions):
        div = Unit(kind="division", name=f"Div {d}", parent_id=company.id, position=d)
        db.session.add(div)
        db.session.flush()
        db.session.add(Post(unit_id=div.id, title=f"Head {d}", is_head=True))
        for k in range(departments):
            units.append(Unit(kind="department", name=f"Dept {d}.{k}", parent_id=div.id))
    db.session.add_all(units)
    db.session.flush()
    posts = [Post(unit_id=u.id, title=f"Post {u.id}.{i}", is_head=i == 0)
             for u in units for i in range(posts_per)]
    db.session.add_all(posts)
    db.session.flush()
    db.session.add_all([Assignment(post_id=p.id, user_id=user_ids[i % len(user_ids)])
                        for i, p in enumerate(posts) if i % 7])  # every 7th post vacant
    db.session.commit()
    charts.forget()


def test_board_query_count_does_not_grow_with_the_chart(user_client, db, count_queries):
    _generate(db, 2, 3, 4, 10)
    with count_queries() as small:
        assert user_client.get("/org/").status_code == 200
    _generate(db, 10, 20, 10, 1500)  # ~2,000 posts, 1,500 people
    with count_queries() as big:
        page = user_client.get("/org/")
    assert page.status_code == 200 and "Dept 9.19" in page.get_data(as_text=True)
    assert len(big) == len(small), big


def test_a_refused_post_edit_keeps_what_was_typed(admin_client, acme, db):
    cashier = post_titled("Cashier")
    resp = admin_client.form(f"/org/posts/{cashier.id}/edit", {
        "title": "Cashier", "unit_id": str(cashier.unit_id), "is_head": "on",
        "duties": "A long text the editor typed"})
    assert resp.status_code == 409  # the unit already has a head
    page = resp.get_data(as_text=True)
    assert "A long text the editor typed" in page and "already has a head post" in page
    assert db.session.get(Post, cashier.id).duties == ""


def test_a_refused_new_unit_keeps_its_name(admin_client, acme):
    resp = admin_client.form("/org/units", {"kind": "division", "name": "Floating idea",
                                            "parent_id": ""})
    assert resp.status_code == 422
    assert 'value="Floating idea"' in resp.get_data(as_text=True)


def test_post_page_query_count_does_not_grow_with_history(admin_client, admin, acme, make_user,
                                                          db, count_queries):
    cashier = post_titled("Cashier")

    def churn(n):
        for _ in range(n):
            a = services.assign(admin, {"post_id": cashier.id, "user_id": make_user().id})
            services.end_assignment(admin, a.id)
        db.session.commit()

    churn(1)
    with count_queries() as few:
        admin_client.get(f"/org/posts/{cashier.id}")
    churn(6)
    with count_queries() as many:
        admin_client.get(f"/org/posts/{cashier.id}")
    assert len(many) == len(few)


def test_home_page_shows_my_posts(user_client, admin, acme, user, make_user, db):
    services.assign(admin, {"post_id": post_titled("Head of Sales").id, "user_id": user.id})
    services.assign(admin, {"post_id": post_titled("Sales manager").id,
                            "user_id": make_user("Sasha Seller").id})
    db.session.commit()
    page = user_client.get("/").get_data(as_text=True)
    card = page.split('data-testid="my-posts"')[1]
    assert "Head of Sales" in card and "1 person works under you." in card
