"""The signup and confirmation pages in headless Chromium, as a visitor uses them.

Screenshots of each step go to /tmp/e2e-browser-*.png (for looking at, not asserted).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from subscribers import tokens
from subscribers.models import ConfirmationRequest, ConsentState

pytestmark = pytest.mark.browser

SHOTS = "/tmp/e2e-browser-{}.png"


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def test_sign_up_and_confirm_in_a_browser(page, consent_texts):
    from playwright.sync_api import expect

    newsletter, promotions = consent_texts["newsletter"], consent_texts["promotions"]
    page.goto(reverse("subscribers:signup"))
    page.screenshot(path=SHOTS.format("1-signup"), full_page=True)

    boxes = page.locator('form input[type="checkbox"]')
    expect(boxes).to_have_count(6)  # three purposes, by email and by post
    for n in range(boxes.count()):
        expect(boxes.nth(n)).not_to_be_checked()
    expect(page.get_by_text(newsletter.use, exact=False)).to_be_visible()

    address = page.locator("#postal-address")
    expect(address).to_be_hidden()
    postal_box = page.locator(f'input[name="consent_{promotions.pk}_postal"]')
    postal_box.check()
    expect(address).to_be_visible()
    expect(page.locator('input[name="address_line1"]')).to_be_visible()
    page.screenshot(path=SHOTS.format("2-postal-ticked"), full_page=True)
    postal_box.uncheck()
    expect(address).to_be_hidden()

    page.locator(f'input[name="consent_{newsletter.pk}_email"]').check()
    page.locator('input[name="email"]').fill("ada@@example")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_load_state()
    error = page.locator("#error-summary")
    expect(error).to_be_visible()
    expect(error).to_contain_text("look like an email address")
    expect(page.locator('input[name="email"]')).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(page.locator("#id_email_error")).to_contain_text("look like an email address")
    expect(page.locator(f'input[name="consent_{newsletter.pk}_email"]')).to_be_checked()
    page.screenshot(path=SHOTS.format("3-invalid-email"), full_page=True)

    page.locator('input[name="email"]').fill("ada@example.org")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("subscribers:check_inbox")) + "$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    page.screenshot(path=SHOTS.format("4-check-inbox"), full_page=True)

    request = ConfirmationRequest.objects.get(subscriber__email="ada@example.org")
    page.goto(reverse("subscribers:confirm", args=[tokens.confirmation_token(request.pk)]))
    buttons = page.locator('main button, main input[type="submit"]')
    expect(buttons).to_have_count(1)
    page.screenshot(path=SHOTS.format("5-confirm"), full_page=True)
    assert ConsentState.objects.get().status == ConsentState.Status.PENDING  # opening is not confirming

    buttons.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're subscribed")
    page.screenshot(path=SHOTS.format("6-subscribed"), full_page=True)
    state = ConsentState.objects.get()
    assert (state.purpose.slug, state.channel, state.status) == ("newsletter", "email", "active")
