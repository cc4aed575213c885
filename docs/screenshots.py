"""Screenshots of the main pages for the README: run against a server with the demo loaded.

    python docs/screenshots.py http://127.0.0.1:5000
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from app.core.demo import DEMO_PASSWORD

OUT = Path(__file__).parent / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = [
    ("home", "/"),
    ("account", "/account"),
    ("tokens", "/account/tokens"),
    ("notifications", "/notifications"),
    ("users", "/admin/users"),
    ("audit", "/admin/audit"),
    ("board", "/org/"),
    ("workload", "/org/workload"),
    ("manage", "/org/manage"),
    ("mail", "/mail/"),
    ("mail-sent", "/mail/?folder=sent"),
    ("mail-deferred", "/mail/?folder=deferred"),
    ("mail-lists", "/mail/lists"),
    ("mail-labels", "/mail/labels"),
    ("mail-settings", "/mail/settings"),
    ("mail-search", "/mail/search?q=report"),
    ("mail-overdue", "/mail/overdue"),
    ("mail-analytics", "/mail/analytics"),
    ("clients", "/clients/"),
    ("clients-overdue", "/clients/?step=overdue"),
    ("clients-contacts", "/clients/contacts"),
    ("clients-leads", "/clients/leads"),
    ("clients-deals", "/clients/deals?step=overdue"),
    ("clients-company-form", "/clients/companies/new"),
    ("clients-admin", "/clients/admin"),
    ("clients-pipelines", "/clients/admin/pipelines"),
]


def main(base: str, email: str = "admin@demo.crm", password: str = DEMO_PASSWORD) -> None:
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/login")
        page.screenshot(path=OUT / "login.png")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for name, path in PAGES:
            response = page.goto(base + path)
            if response is not None and response.status == 404:
                continue  # a page this installation does not have
            page.wait_for_load_state("networkidle")
            page.screenshot(path=OUT / f"{name}.png", full_page=name != "board")
        page.goto(f"{base}/org/")
        page.get_by_role("link", name="Sales manager").first.click()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=OUT / "post.png", full_page=True)
        mail(page, base)
        tasks(browser, page, base, password)
        clients(page, base)
        browser.close()


def mail(page, base: str) -> None:
    """A conversation, and the compose form with the recipient picker open."""
    page.goto(f"{base}/mail/?folder=sent")
    page.get_by_test_id("mail-row").first.get_by_role("link").click()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "mail-thread.png", full_page=True)
    page.goto(f"{base}/mail/compose")
    page.fill("#f-subject", "Figures for the week")
    page.fill("#f-body", "Please send your post's figures by **Thursday 14:00**.")
    page.select_option("#f-kind", "request")
    page.get_by_test_id("picker-to").fill("sales")
    page.get_by_test_id("picker-option").first.wait_for()
    page.screenshot(path=OUT / "mail-compose.png", full_page=True)


def _signed_in(browser, base: str, email: str, password: str):
    other = browser.new_page(viewport={"width": 1280, "height": 800})
    other.goto(f"{base}/login")
    other.fill("#email", email)
    other.fill("#password", password)
    other.click("button[type=submit]")
    other.wait_for_url(f"{base}/")
    return other


def tasks(browser, page, base: str, password: str) -> None:
    """An employee's day, a task and the new-task form; a head's team board; programmes and
    runs as the administrator sees them."""
    staff = _signed_in(browser, base, "staff@demo.crm", password)
    staff.goto(f"{base}/tasks/")
    staff.wait_for_load_state("networkidle")
    staff.screenshot(path=OUT / "tasks.png", full_page=True)
    staff.get_by_role("link", name="Call back Romashka about the offer").first.click()
    staff.wait_for_load_state("networkidle")
    staff.screenshot(path=OUT / "tasks-task.png", full_page=True)
    staff.goto(f"{base}/tasks/new")
    staff.fill("#f-title", "Quote for Acme")
    staff.get_by_test_id("assignee-filter").fill("sales")  # the list narrows as one types
    staff.screenshot(path=OUT / "tasks-new.png", full_page=True)
    staff.close()
    head = _signed_in(browser, base, "finance@demo.crm", password)
    head.goto(f"{base}/tasks/board")
    head.wait_for_load_state("networkidle")
    head.screenshot(path=OUT / "tasks-board.png")  # the top of the columns
    head.close()
    page.goto(f"{base}/tasks/programmes")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "tasks-programmes.png", full_page=True)
    page.get_by_role("link", name="New client onboarding").first.click()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "tasks-programme.png", full_page=True)
    page.goto(f"{base}/tasks/runs")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "tasks-runs.png", full_page=True)
    page.get_by_role("link", name="Purchase: laptops for sales").first.click()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "tasks-run.png", full_page=True)


def clients(page, base: str) -> None:
    """The holding's card, a subsidiary's card with the log form refused, a lead, a deal, and
    the board with the lost-reason dialog open (cancelled: nothing is changed)."""
    page.goto(f"{base}/clients/?q=Гранит Групп")
    page.get_by_test_id("company-row").first.get_by_role("link").first.click()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "clients-company.png", full_page=True)
    page.get_by_test_id("holding").get_by_role("link").first.click()
    page.wait_for_load_state("networkidle")
    page.locator("label[for=log-outcome-advance]").click()
    page.get_by_test_id("log-submit").click()  # advancing without a step: refused, shown again
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "clients-company-log.png")
    page.goto(f"{base}/clients/leads?show=overdue")
    page.get_by_test_id("lead-row").first.get_by_role("link").first.click()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "clients-lead.png", full_page=True)
    page.goto(f"{base}/clients/deals")
    page.get_by_test_id("deal-row").first.get_by_role("link").first.click()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "clients-deal.png", full_page=True)
    page.goto(f"{base}/clients/pipelines")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "clients-board.png")
    lost = page.locator('[data-stage-kind="lost"] .deal-cards')
    page.locator('[data-stage-kind="open"] .deal-card').first.drag_to(lost)
    page.get_by_test_id("lost-modal").wait_for(state="visible")
    page.wait_for_timeout(300)  # the dialog fades in
    page.screenshot(path=OUT / "clients-board-lost.png")
    page.get_by_role("button", name="Cancel").click()


if __name__ == "__main__":
    main(*(sys.argv[1:] or ["http://127.0.0.1:5000"]))
