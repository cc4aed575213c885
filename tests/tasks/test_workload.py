"""The chart's workload counts open and overdue tasks and programme stages per person and per
post, through the providers tasks registers; the workload page and API show them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from app.core import clock
from app.orgchart import services as org
from app.tasks import services as tasks

T0 = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)
OPEN, OVERDUE = "tasks_open", "tasks_overdue"


@pytest.fixture
def work(office, db):
    """Sam: two open tasks (one due in an hour), one done; Sara: one in progress and a task
    given to the Seller post; Fred: a programme's first stage on the vacant Cashier post (held
    from above) and a request still waiting for him, which is nobody's work yet."""
    clock.freeze(T0)
    soon = (T0 + timedelta(hours=1)).isoformat()
    later = (T0 + timedelta(days=3)).isoformat()
    tasks.create_task(office.Helen, {"title": "Call Acme", "assignee": f"user:{office.Sam.id}",
                                     "due_at": soon})
    tasks.create_task(office.Helen, {"title": "Send the offer", "assignee": f"user:{office.Sam.id}",
                                     "due_at": later})
    done = tasks.create_task(office.Helen, {"title": "Done already",
                                            "assignee": f"user:{office.Sam.id}", "due_at": soon})
    tasks.set_status(office.Sam, done.id, {"action": "done"})
    busy = tasks.create_task(office.Helen, {"title": "Price list",
                                            "assignee": f"user:{office.Sara.id}"})
    tasks.set_status(office.Sara, busy.id, {"action": "start"})
    # Work for the Seller post goes to its first holder.
    by_post = tasks.create_task(office.Helen, {"title": "Answer the web lead",
                                               "assignee": f"post:{office.seller.id}",
                                               "due_at": soon})
    programme = tasks.create_programme(office.Helen, {"theme": "new client", "name": "Payment",
        "stages": [{"title": "Take the payment", "post_id": office.cashier.id, "duration_hours": 2},
                   {"title": "Send the receipt", "post_id": office.seller.id}]})
    run = tasks.start_run(office.Helen, {"programme_id": programme.id})
    asked = tasks.create_task(office.Sam, {"title": "Refund", "assignee": f"user:{office.Fred.id}",
                                           "due_at": soon})
    db.session.commit()
    assert asked.status == "requested" and run.stages[0].assignee_id == office.Fred.id
    return by_post


def _rows(rows) -> dict[int, dict[str, int]]:
    return {r.id: r.parts for r in rows}


def test_providers_are_registered():
    keys = {p.key: p for p in org.providers()}
    assert {OPEN, OVERDUE} <= set(keys)
    assert keys[OPEN].by_user and keys[OPEN].by_post
    assert keys[OVERDUE].by_user and keys[OVERDUE].by_post
    assert str(keys[OPEN].label) == "Open tasks and stages"
    assert str(keys[OVERDUE].label) == "Overdue tasks and stages"


def test_open_and_overdue_work_per_person_and_post(office, admin, work, db):
    people, posts = org.workload(admin)
    people, posts = _rows(people), _rows(posts)
    first_seller = work.assignee_id  # Sam or Sara: the post's first holder
    sam_open = 2 + (first_seller == office.Sam.id)
    sara_open = 1 + (first_seller == office.Sara.id)
    assert (people[office.Sam.id][OPEN], people[office.Sara.id][OPEN]) == (sam_open, sara_open)
    assert people[office.Fred.id][OPEN] == 1  # the stage, not the request
    assert people[office.Helen.id].get(OPEN, 0) == 0
    assert people[office.Dora.id].get(OPEN, 0) == 0
    assert all(parts.get(OVERDUE, 0) == 0 for parts in people.values())
    assert posts[office.seller.id][OPEN] == 1  # the task given to the post
    assert posts[office.cashier.id][OPEN] == 1  # the open stage; the waiting one is not counted
    assert posts[office.head.id].get(OPEN, 0) == 0

    clock.advance(timedelta(hours=1, minutes=1))  # "Call Acme" and the post's task are late
    people, posts = (_rows(rows) for rows in org.workload(admin))
    assert people[office.Sam.id][OVERDUE] == 1 + (first_seller == office.Sam.id)
    assert people[office.Sara.id].get(OVERDUE, 0) == (first_seller == office.Sara.id)
    assert people[office.Fred.id].get(OVERDUE, 0) == 0
    assert posts[office.seller.id][OVERDUE] == 1
    assert posts[office.cashier.id].get(OVERDUE, 0) == 0

    clock.advance(timedelta(hours=1))  # the stage is late too
    people, posts = (_rows(rows) for rows in org.workload(admin))
    assert people[office.Fred.id][OVERDUE] == 1
    assert posts[office.cashier.id][OVERDUE] == 1


def test_closing_work_takes_it_off_the_load(office, admin, work, db):
    clock.advance(timedelta(hours=2))
    tasks.set_status(work.assignee, work.id, {"action": "done"})
    db.session.commit()
    _people, posts = (_rows(rows) for rows in org.workload(admin))
    assert posts[office.seller.id].get(OPEN, 0) == 0
    assert posts[office.seller.id].get(OVERDUE, 0) == 0


def test_a_head_sees_the_load_of_their_team_only(office, work):
    people, posts = (_rows(rows) for rows in org.workload(office.Helen))
    assert set(people) == {office.Helen.id, office.Sam.id, office.Sara.id}
    assert set(posts) == {office.head.id, office.seller.id}
    assert posts[office.seller.id][OPEN] == 1


def test_the_load_is_counted_in_a_fixed_number_of_queries(office, admin, work, make_user, db,
                                                          count_queries):
    org.workload(admin)
    with count_queries() as before:
        org.workload(admin)
    for i in range(5):
        extra = make_user(f"Seller {i}")
        org.assign(admin, {"post_id": office.seller.id, "user_id": extra.id})
        tasks.create_task(office.Helen, {"title": f"Lead {i}", "assignee": f"user:{extra.id}"})
    db.session.commit()
    org.workload(admin)
    with count_queries() as after:
        people, _posts = org.workload(admin)
    assert len(after) == len(before)
    assert sum(r.parts.get(OPEN, 0) for r in people) == 5 + 5


def _cells(html: str, name: str) -> list[str]:
    row = re.search(rf"<tr><td><a [^>]*>{re.escape(name)}</a></td>(.*?)</tr>", html, re.S)
    assert row, f"no row for {name}"
    return re.findall(r'<td class="text-end[^"]*">(\d+)</td>', row.group(1))


def test_the_workload_page_and_api_show_the_counts(client, office, work, token_for):
    clock.advance(timedelta(hours=3))
    assert client.sign_in(office.Helen.email).status_code == 302
    html = client.get("/org/workload").get_data(as_text=True)
    assert "Open tasks and stages" in html and "Overdue tasks and stages" in html
    table = html.split('data-testid="workload-people"')[1].split("</table>")[0]
    headers = re.findall(r'<th class="text-end">([^<]+)</th>', table)
    sam = dict(zip(headers, _cells(table, "Sam"), strict=True))
    first_is_sam = work.assignee_id == office.Sam.id
    assert sam["Open tasks and stages"] == str(2 + first_is_sam)
    assert sam["Overdue tasks and stages"] == str(1 + first_is_sam)
    assert "Fred" not in html  # outside Helen's team

    body = client.get("/api/v1/orgchart/workload",
                      headers={"Authorization": f"Bearer {token_for(office.Dora)}"}).get_json()
    fred = next(r for r in body["people"] if r["id"] == office.Fred.id)
    assert fred["parts"][OPEN] == 1 and fred["parts"][OVERDUE] == 1
    cashier = next(r for r in body["posts"] if r["id"] == office.cashier.id)
    assert cashier["parts"] == {OPEN: 1, OVERDUE: 1}
