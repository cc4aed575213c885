"""A head of sales starts a programme for a client from its card; the seller holding the first stage's post
comments, ticks its checklist, attaches the signed act and closes it. The comment and the
closing appear at once on the stage's page the head has open, the second stage on the
cashier's open "my day" and on the head's open timeline; no page is reloaded."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.clients import services as clients
from app.core.models import User
from app.extensions import db
from app.orgchart import services as org
from app.tasks import services as tasks
from tests.conftest import seed_user
from tests.e2e.test_shell import sign_in

pytestmark = [pytest.mark.live, pytest.mark.e2e]

STAYED = "() => { window.stillHere = true; }"  # gone if the page reloads


def office():
    """Sales (Hanna heads it, Simon sells) and Finance (Carmen is the cashier)."""
    admin_id = seed_user("Root Admin", "root-tasks@example.test", is_admin=True).id
    ids = {key: seed_user(name, f"{key}-tasks@example.test").id
           for key, name in (("hanna", "Hanna Head"), ("simon", "Simon Seller"),
                             ("carmen", "Carmen Cashier"))}
    admin = db.session.get(User, admin_id)
    company = org.create_unit(admin, {"name": "Browser Co", "kind": "company"})
    sales = org.create_unit(admin, {"name": "Sales", "kind": "division", "parent_id": company.id})
    finance = org.create_unit(admin, {"name": "Finance", "kind": "division",
                                      "parent_id": company.id})
    head = org.create_post(admin, {"unit_id": sales.id, "title": "Head of Sales", "is_head": True})
    seller = org.create_post(admin, {"unit_id": sales.id, "title": "Seller"})
    cashier = org.create_post(admin, {"unit_id": finance.id, "title": "Cashier"})
    for key, post in (("hanna", head), ("simon", seller), ("carmen", cashier)):
        org.assign(admin, {"post_id": post.id, "user_id": ids[key]})
    hanna = db.session.get(User, ids["hanna"])
    clients.create_company(hanna, {"legal_name": "Acme Ltd", "responsible_id": ids["simon"]})
    tasks.create_programme(hanna, {"theme": "new client", "name": "Onboarding", "stages": [
        {"title": "Sign the contract", "post_id": seller.id, "needs_attachment": True,
         "checklist": ["Print two copies", "Both sides sign"], "duration_hours": 24},
        {"title": "Issue the first invoice", "post_id": cashier.id, "duration_hours": 8}]})
    db.session.commit()
    db.session.close()


def test_a_programme_runs_stage_by_stage_live(live_server, new_page):
    base = live_server.url
    office()
    head, seller, cashier = new_page(), new_page(), new_page()
    sign_in(head, base, "hanna-tasks@example.test")
    sign_in(seller, base, "simon-tasks@example.test")
    sign_in(cashier, base, "carmen-tasks@example.test")

    # The cashier keeps her day open: nothing for her yet.
    cashier.goto(f"{base}/tasks/")
    expect(cashier.get_by_test_id("day-empty")).to_be_visible()
    expect(cashier.locator("body")).to_have_attribute("data-live", "1")
    cashier.evaluate(STAYED)

    # The head opens the client's card and starts the programme for it.
    head.goto(f"{base}/clients/")
    head.get_by_role("link", name="Acme Ltd").first.click()
    head.get_by_test_id("company-start-programme").click()
    head.get_by_label("Programme").select_option(label="new client · Onboarding (2 stages)")
    expect(head.get_by_test_id("run-link").locator("option:checked")).to_have_text(
        "Client: Acme Ltd")
    head.get_by_test_id("start").click()
    expect(head.get_by_test_id("run-title")).to_have_text("Onboarding: Acme Ltd")
    expect(head.get_by_test_id("tl-row")).to_have_count(2)
    expect(head.get_by_test_id("tl-row").nth(0)).to_have_attribute("data-status", "open")
    expect(head.get_by_test_id("tl-row").nth(1)).to_have_attribute("data-status", "waiting")
    expect(head.locator("body")).to_have_attribute("data-live", "1")
    head.evaluate(STAYED)

    # The seller finds the first stage in his day and opens it.
    seller.goto(f"{base}/tasks/")
    seller.get_by_test_id("task-row").get_by_role("link", name="Sign the contract").click()
    expect(seller.get_by_test_id("needs-attachment")).to_be_visible()
    steps = seller.get_by_test_id("step")
    expect(steps).to_have_count(2)

    # Closing it too early is refused, with the reason.
    seller.get_by_test_id("task-done").click()
    expect(seller.locator("#flash-area")).to_contain_text("Required steps are still open")

    # The head, in another tab, follows the stage's page: the seller's comment appears there.
    follower = new_page()
    sign_in(follower, base, "hanna-tasks@example.test")
    follower.goto(seller.url)
    expect(follower.get_by_test_id("no-comments")).to_be_visible()
    expect(follower.locator("body")).to_have_attribute("data-live", "1")
    follower.evaluate(STAYED)
    seller.get_by_test_id("comment-body").fill("The client signs *today*.")
    seller.get_by_test_id("comment-send").click()
    expect(seller.get_by_test_id("comment")).to_contain_text("The client signs today.")
    expect(seller.get_by_test_id("comment-body")).to_have_value("")
    expect(follower.get_by_test_id("comment")).to_contain_text("The client signs today.")
    expect(follower.get_by_test_id("comment").locator("em")).to_have_text("today")

    # He ticks the checklist (each tick saved at once) and attaches the signed act.
    for i in range(2):
        steps.nth(i).locator("input[type=checkbox]").check()
        expect(steps.nth(i)).to_have_class(re.compile(r"\bdone\b"))
    expect(seller.get_by_test_id("task-status")).to_have_text("In progress")
    seller.get_by_test_id("task-done").click()
    expect(seller.locator("#flash-area")).to_contain_text("needs a file attached")
    seller.locator("#files input[type=file]").set_input_files(files=[{
        "name": "signed-act.pdf", "mimeType": "application/pdf",
        "buffer": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"}])
    seller.locator("#files").get_by_role("button", name="Attach").click()
    expect(seller.locator("#files")).to_contain_text("signed-act.pdf")
    seller.get_by_test_id("task-done").click()
    expect(seller.get_by_test_id("task-status")).to_have_text("Done")
    expect(follower.get_by_test_id("task-status")).to_have_text("Done")  # its page, live too
    expect(follower.get_by_test_id("step").nth(1)).to_have_class(re.compile(r"\bdone\b"))
    assert follower.evaluate("window.stillHere") is True

    # The second stage is in the cashier's day, and the head's timeline moved on: live.
    stage = cashier.get_by_test_id("task-row").get_by_role("link", name="Issue the first invoice")
    expect(stage).to_be_visible()
    expect(cashier.get_by_test_id("count-mine")).to_have_text("1")
    assert cashier.evaluate("window.stillHere") is True
    expect(head.get_by_test_id("tl-row").nth(0)).to_have_attribute("data-status", "done")
    expect(head.get_by_test_id("tl-row").nth(1)).to_have_attribute("data-status", "open")
    assert head.evaluate("window.stillHere") is True

    stage.click()
    expect(cashier.get_by_test_id("task-title")).to_have_text("Issue the first invoice")
    expect(cashier.get_by_test_id("task-run")).to_have_text("Onboarding: Acme Ltd")
