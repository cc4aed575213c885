"""A site posts its web form; the lead arrives in the seller's list; nobody calls in time, so
on a moved clock the job tells the head of sales; the seller converts the lead and drags
the deal to Won on the board."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect

from app.clients import services as clients
from app.core import clock, jobs
from app.core.models import User
from app.extensions import db
from app.orgchart import chart as charts
from app.orgchart import services as org
from tests.conftest import seed_user
from tests.e2e.test_shell import sign_in

pytestmark = [pytest.mark.live, pytest.mark.e2e]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def seed_sales() -> dict:
    """Helen heads Sales, Sam sells; new leads go to Sam's post; a pipeline and a web form."""
    root = seed_user("Root Admin", "root-clients@example.test", is_admin=True)
    helen = seed_user("Helen Head", "helen-sales@example.test")
    sam = seed_user("Sam Seller", "sam-sales@example.test")
    admin = db.session.get(User, root.id)
    company = org.create_unit(admin, {"name": "Browser Co", "kind": "company"})
    sales = org.create_unit(admin, {"name": "Sales", "kind": "division", "parent_id": company.id})
    head = org.create_post(admin, {"unit_id": sales.id, "title": "Head of Sales", "is_head": True})
    seller = org.create_post(admin, {"unit_id": sales.id, "title": "Seller"})
    org.assign(admin, {"post_id": head.id, "user_id": helen.id})
    org.assign(admin, {"post_id": seller.id, "user_id": sam.id})
    pipeline = clients.save_pipeline(admin, {"name": "Sales", "stages": [
        {"name": "New", "probability": 10}, {"name": "Measuring", "probability": 30},
        {"name": "Won", "kind": "won", "probability": 100}, {"name": "Lost", "kind": "lost"}]})
    clients.add_reason(admin, {"kind": "lost", "name": "Chose a rival"})
    clients.set_settings(admin, {"lead_minutes": 15, "lead_post_id": seller.id})
    _form, key = clients.create_web_form(admin, "Main site")
    db.session.commit()
    ids = {"pipeline": pipeline.id, "key": key}
    db.session.close()
    charts.forget()  # this context's snapshot of the chart holds the closed session's rows
    return ids


def test_web_lead_missed_escalated_converted_and_won(live_server, new_page):
    base = live_server.url
    clock.freeze(T0)  # the live server runs in this process: it reads the same clock
    seeded = seed_sales()

    # A site posts its form with the key: a plain HTTP POST, as a visitor's browser would.
    answer = requests.post(f"{base}/clients/forms/lead", timeout=10, data={
        "key": seeded["key"], "name": "Olga Site", "company": "Cottage Builders LLC",
        "email": "olga@cottage.test", "phone": "+7 900 765-43-21",
        "message": "Windows for a cottage"})
    assert answer.status_code == 200 and answer.json() == {"ok": True}

    sam = new_page()
    sign_in(sam, base, "sam-sales@example.test")
    sam.get_by_role("link", name="Clients").click()
    sam.get_by_role("link", name="Leads").click()
    row = sam.get_by_test_id("lead-row").filter(has_text="Olga Site")
    expect(row).to_have_count(1)
    expect(row).not_to_have_attribute("data-overdue", "1")
    expect(row).to_contain_text("Web form")

    # Nobody calls: sixteen minutes later the due jobs run.
    clock.advance(timedelta(minutes=16))
    assert jobs.run_due(clock.utcnow(), only="clients_lead_escalate") == {
        "clients_lead_escalate": "escalated 1"}
    sam.reload()
    expect(row).to_have_attribute("data-overdue", "1")
    expect(row).to_contain_text("overdue since")
    expect(sam.get_by_test_id("overdue-leads")).to_have_text("1")

    # The head of sales is told.
    helen = new_page()
    sign_in(helen, base, "helen-sales@example.test")
    expect(helen.get_by_test_id("bell-count")).to_have_text("1")
    helen.locator("#bell").click()
    expect(helen.locator("#bell-items")).to_contain_text("A lead was not contacted in time")
    helen.locator("#bell-items").get_by_role("link", name=re.compile("not contacted in time")).click()
    expect(helen.get_by_role("heading", level=1)).to_contain_text("Olga Site")
    expect(helen.get_by_test_id("lead-deadline")).to_contain_text("The head of sales has been told")

    # Sam converts the lead in one step and lands on the new deal.
    row.get_by_role("link", name="Olga Site").click()
    expect(sam.get_by_test_id("lead-deadline")).to_contain_text("Not contacted in time")
    form = sam.get_by_test_id("convert-form")
    expect(form.get_by_label(re.compile("A new company"))).to_be_checked()
    form.get_by_label("Amount").fill("240000")
    form.get_by_test_id("convert").click()
    expect(sam.get_by_role("heading", level=1)).to_contain_text("Windows for a cottage")
    expect(sam.get_by_test_id("deal-status")).to_have_text("New")
    expect(sam.locator("body")).to_contain_text("Cottage Builders LLC")

    # On the board the card is dragged from New to Won.
    sam.get_by_role("link", name="Deals").first.click()
    board = sam.get_by_test_id("deal-board")
    new_col = board.get_by_test_id("stage-column").filter(has=sam.get_by_text("New", exact=True))
    won_col = board.locator('[data-testid="stage-column"][data-stage-kind="won"]')
    card = board.get_by_test_id("deal-card").filter(has_text="Windows for a cottage")
    expect(new_col.get_by_test_id("deal-card")).to_have_count(1)
    card.drag_to(won_col.locator(".deal-cards"))
    expect(won_col.get_by_test_id("deal-card")).to_have_count(1)
    expect(card).to_have_attribute("data-saved", "1")
    expect(won_col.locator("[data-count]")).to_have_text("1")
    expect(sam.get_by_test_id("deal-board-error")).to_be_hidden()

    # It stays there: the server moved it.
    sam.reload()
    expect(won_col.get_by_test_id("deal-card")).to_contain_text("Windows for a cottage")
    expect(new_col.get_by_test_id("deal-card")).to_have_count(0)
    won_col.get_by_role("link", name="Windows for a cottage").click()
    expect(sam.get_by_test_id("deal-status")).to_have_text("Won")
    expect(sam.get_by_test_id("stage-history")).to_contain_text("Won")
    clock.release()
