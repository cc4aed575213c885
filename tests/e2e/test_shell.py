"""A person signs in, switches to Russian, gets a live notification, and signs out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD, seed_user

pytestmark = [pytest.mark.live, pytest.mark.e2e]


def sign_in(page, base, email):
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("user-menu")).to_be_visible()


def test_sign_in_russian_live_notification_sign_out(live_server, new_page):
    seed_user("Elena Browser", "elena@example.test")
    base = live_server.url
    page = new_page()

    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill("elena@example.test")
    page.get_by_label("Password").fill("wrong-password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong e-mail or password.")

    sign_in(page, base, "elena@example.test")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Elena Browser")

    page.get_by_test_id("language-switch").get_by_role("button", name="RU").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Добрый день")
    page.get_by_test_id("user-menu").click()
    expect(page.get_by_role("button", name="Выйти")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("body")).to_have_attribute("data-live", "1")
    expect(page.get_by_test_id("bell-count")).to_be_hidden()

    # In another tab of the same person, a new API token is created...
    other = new_page()
    sign_in(other, base, "elena@example.test")
    other.goto(f"{base}/account/tokens")
    # (her language is Russian now, so this tab is in Russian too)
    other.get_by_label("Для чего он?").fill("Nightly export")
    other.get_by_role("button", name="Создать токен").click()
    expect(other.get_by_test_id("new-token")).to_contain_text("crm_")

    # ...and the first tab hears of it at once, without reloading.
    expect(page.get_by_test_id("bell-count")).to_have_text("1")
    expect(page.get_by_test_id("toast")).to_contain_text("Nightly export")
    page.locator("#bell").click()
    expect(page.locator("#bell-items")).to_contain_text("Nightly export")

    page.get_by_test_id("user-menu").click()
    page.get_by_role("button", name="Выйти").click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("button", name="Войти")).to_be_visible()
    page.goto(f"{base}/account")
    expect(page).to_have_url(f"{base}/login?next=/account")
