"""Two colleagues in two browsers exchange mail live; one goes offline, comes back and
sees everything it missed, once, without reloading."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import seed_user
from tests.e2e.test_shell import sign_in

pytestmark = [pytest.mark.live, pytest.mark.e2e]

RECORD = """() => {
  window.stillHere = true;  // gone if the page reloads
  window.seen = [];
  document.addEventListener("crm:feed", (e) => window.seen.push(
    {seq: e.detail.seq, kind: e.detail.kind, subject: e.detail.payload.subject || null}));
}"""


def write(page, base, to_id, subject, body):
    page.goto(f"{base}/mail/compose?to=user:{to_id}")
    page.get_by_label("Subject").fill(subject)
    page.locator("#f-body").fill(body)
    page.get_by_test_id("send").click()
    expect(page).to_have_url(f"{base}/mail/")


def test_mail_arrives_live_and_nothing_is_lost_offline(live_server, new_page):
    base = live_server.url
    alice = seed_user("Alice Sender", "alice-mail@example.test")
    boris = seed_user("Boris Reader", "boris-mail@example.test")
    a, b = new_page(), new_page()
    sign_in(a, base, alice.email)
    sign_in(b, base, boris.email)
    b.goto(f"{base}/mail/")
    expect(b.locator("body")).to_have_attribute("data-live", "1")
    expect(b.get_by_test_id("mail-unread")).to_be_hidden()
    expect(b.get_by_test_id("mail-empty")).to_be_visible()

    # Alice picks Boris in the recipient picker and sends.
    a.goto(f"{base}/mail/compose")
    a.get_by_test_id("picker-to").fill("Boris")
    a.get_by_test_id("picker-option").filter(has_text="Boris Reader").click()
    expect(a.locator(".chip")).to_have_text(["Boris Reader"])
    a.get_by_label("Subject").fill("Lunch at one?")
    a.locator("#f-body").fill("Shall we try the **new** place?")
    a.get_by_test_id("send").click()
    expect(a).to_have_url(f"{base}/mail/")

    # Boris's open inbox shows it without a reload; the unread badge goes up; a toast.
    row = b.get_by_test_id("mail-row").filter(has_text="Lunch at one?")
    expect(row).to_have_count(1)
    expect(row).to_have_class(re.compile(r"\bunread\b"))
    expect(b.get_by_test_id("mail-unread")).to_have_text("1")
    expect(b.get_by_test_id("folder-unread")).to_have_text("1")
    expect(b.get_by_test_id("toast").filter(has_text="Alice Sender")).to_contain_text("Lunch at one?")

    # Alice keeps the conversation open.
    a.goto(f"{base}/mail/?folder=sent")
    a.get_by_test_id("mail-row").filter(has_text="Lunch at one?").get_by_role("link").click()
    expect(a.get_by_test_id("thread-message")).to_have_count(1)
    expect(a.get_by_test_id("receipts")).to_contain_text("Read by 0 of 1")

    # Boris opens it (Alice sees it read, live) and replies.
    row.get_by_role("link").click()
    expect(b.locator(".mail-body").first).to_contain_text("Shall we try the new place?")
    expect(b.get_by_test_id("mail-unread")).to_be_hidden()
    expect(a.get_by_test_id("receipts")).to_contain_text("Read by 1 of 1")
    b.get_by_test_id("reply").click()
    expect(b.locator(".chip")).to_have_text(["Alice Sender"])
    b.locator("#f-body").fill("Yes, see you there.")
    b.get_by_test_id("send").click()
    expect(b.get_by_test_id("thread-message")).to_have_count(2)

    # Alice's open conversation shows the reply without a reload.
    expect(a.get_by_test_id("thread-message")).to_have_count(2)
    expect(a.locator("#thread")).to_contain_text("Yes, see you there.")
    expect(a.get_by_test_id("mail-unread")).to_have_text("0")  # opened as it arrived

    # Boris goes back to his inbox and loses the network; Alice sends three more.
    b.goto(f"{base}/mail/")
    expect(b.locator("body")).to_have_attribute("data-live", "1")
    b.evaluate(RECORD)
    b.context.set_offline(True)
    expect(b.locator("body")).to_have_attribute("data-live", "0")
    subjects = ["Offline one", "Offline two", "Offline three"]
    for subject in subjects:
        write(a, base, boris.id, subject, f"{subject}: text")
    b.wait_for_timeout(500)
    expect(b.get_by_test_id("mail-row").filter(has_text="Offline")).to_have_count(0)

    # Back online: all three appear, once each, in order, and the page was not reloaded.
    b.context.set_offline(False)
    expect(b.locator("body")).to_have_attribute("data-live", "1", timeout=15_000)
    for subject in subjects:
        expect(b.get_by_test_id("mail-row").filter(has_text=subject)).to_have_count(1)
    expect(b.get_by_test_id("mail-unread")).to_have_text("3")
    assert b.evaluate("window.stillHere") is True
    seen = b.evaluate("window.seen")
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # in order, no gap, none twice
    new = [e["subject"] for e in seen if e["kind"] == "message.new"]
    assert new == subjects
    rows = b.get_by_test_id("mail-row").all_inner_texts()
    assert [next(s for s in subjects if s in r) for r in rows if "Offline" in r] == subjects[::-1]
