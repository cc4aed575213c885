"""A person opens the board, follows a post and a person, and sees a vacancy held from above."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.core.models import User
from app.extensions import db
from app.orgchart import chart as charts
from app.orgchart import services, template
from tests.conftest import seed_user
from tests.e2e.test_shell import sign_in

pytestmark = [pytest.mark.live, pytest.mark.e2e]


def test_board_post_person_and_vacancy(live_server, new_page):
    admin_id = seed_user("Root Admin", "root-org@example.test", is_admin=True).id
    head_id = seed_user("Dina Director", "dina@example.test").id
    seller_id = seed_user("Sam Seller", "sam@example.test").id
    admin = db.session.get(User, admin_id)
    template.apply(admin, {"company": "Browser Co", "language": "en"})
    posts = {p.title: p.id for p in charts.load().posts.values()}
    services.assign(admin, {"post_id": posts["Head of the Dissemination division"],
                            "user_id": head_id})
    services.assign(admin, {"post_id": posts["Sales manager"], "user_id": seller_id})
    db.session.commit()
    db.session.close()

    page = new_page()
    sign_in(page, live_server.url, "sam@example.test")
    page.get_by_role("link", name="Organisation chart").click()
    expect(page.get_by_test_id("division")).to_have_count(7)
    sales_dept = page.get_by_role("region", name="Sales", exact=True)
    expect(sales_dept.get_by_test_id("vacant")).to_contain_text("held from above by Dina Director")

    sales_dept.get_by_role("link", name="Sales manager").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sales manager")
    expect(page.locator(".holders").first).to_contain_text("Sam Seller")
    page.get_by_role("link", name="Head of Sales").first.click()
    expect(page.get_by_test_id("vacant")).to_contain_text("Dina Director")

    page.get_by_role("link", name="Dina Director").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dina Director")
    expect(page.locator("body")).to_contain_text("Head of the Dissemination division")
    expect(page.locator("body")).to_contain_text("Sam Seller")  # a subordinate
