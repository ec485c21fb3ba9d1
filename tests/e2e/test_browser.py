"""The signup, confirmation, preference and unsubscribe pages in headless Chromium, as a
visitor uses them.

Screenshots of each step go to /tmp/e2e-browser-*.png (for looking at, not asserted).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from subscribers import ledger, links, selectors, tokens
from subscribers.models import ConfirmationRequest, ConsentEvent, ConsentState, Purpose

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
    expect(boxes).to_have_count(7)  # three purposes by email and by post, and tracking
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


def test_preference_centre_in_a_browser(page, confirmed_subscriber):
    from playwright.sync_api import expect

    ada = confirmed_subscriber
    newsletter = Purpose.objects.get(slug="newsletter")
    page.goto(reverse("subscribers:preferences", args=[selectors.preferences_token(ada)]))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your preferences")
    switch = page.get_by_role("switch", name="Newsletter by email")
    expect(switch).to_be_checked()
    expect(page.get_by_role("switch", name="Promotions by email")).not_to_be_checked()
    page.screenshot(path=SHOTS.format("7-preferences"), full_page=True)

    switch.click()
    expect(page.get_by_role("status")).to_contain_text("Newsletter by email is off.")
    expect(page.get_by_role("switch", name="Newsletter by email")).not_to_be_checked()
    assert ConsentState.objects.get(subscriber=ada, purpose=newsletter).status == "withdrawn"

    page.get_by_role("switch", name="Newsletter by email").click()
    expect(page.get_by_role("status")).to_contain_text("Newsletter by email is on.")
    expect(page.get_by_role("switch", name="Newsletter by email")).to_be_checked()
    state = ConsentState.objects.get(subscriber=ada, purpose=newsletter)
    assert (state.status, state.last_event.kind, state.last_event.source) == (
        "active",
        "confirmed",
        "preference_centre",
    )

    frequency = page.locator(f"#frequency-form-{newsletter.pk}")
    frequency.get_by_label("At most once a week").check()
    frequency.get_by_role("button", name="Save how often").click()
    expect(page.get_by_role("status")).to_contain_text("Newsletter: At most once a week.")
    expect(
        page.locator(f"#frequency-form-{newsletter.pk}").get_by_label("At most once a week")
    ).to_be_checked()
    assert ConsentState.objects.get(subscriber=ada, purpose=newsletter).frequency == "weekly"

    pause = page.locator("#pause-form")
    pause.get_by_label("3 months").check()
    pause.get_by_role("button", name="Pause").click()
    expect(page.locator("#paused-until")).to_contain_text("Paused until")
    ada.refresh_from_db()
    assert ada.paused_until is not None
    page.screenshot(path=SHOTS.format("8-paused"), full_page=True)
    assert [e.kind for e in ConsentEvent.objects.filter(subscriber=ada).order_by("seq")][-5:] == [
        "withdrawn",
        "requested",
        "confirmed",
        "frequency_changed",
        "paused",
    ]
    assert list(ledger.verify()) == []


def test_preference_centre_fits_a_phone(browser, live_server, confirmed_subscriber):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        page.goto(
            reverse("subscribers:preferences", args=[selectors.preferences_token(confirmed_subscriber)])
        )
        page.screenshot(path=SHOTS.format("9-preferences-phone"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


def test_unsubscribe_confirm_and_undo_in_a_browser(page, confirmed_subscriber):
    from playwright.sync_api import expect

    ada = confirmed_subscriber
    newsletter = Purpose.objects.get(slug="newsletter")
    page.goto(reverse("subscribers:unsubscribe", args=[links.make("unsubscribe", ada.pk, newsletter.pk)]))
    assert ConsentState.objects.get(subscriber=ada).status == "active"  # opening is not unsubscribing
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're unsubscribed")
    assert ConsentState.objects.get(subscriber=ada).status == "withdrawn"
    page.screenshot(path=SHOTS.format("10-unsubscribed"), full_page=True)

    page.get_by_role("button", name="Undo: subscribe me again").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're subscribed again")
    expect(page.get_by_text("You'll get Newsletter emails again.")).to_be_visible()
    state = ConsentState.objects.get(subscriber=ada)
    assert (state.status, state.last_event.kind, state.last_event.source) == (
        "active",
        "confirmed",
        "unsubscribe_link",
    )
    page.screenshot(path=SHOTS.format("11-resubscribed"), full_page=True)

    page.get_by_role("link", name="See and change everything you receive from us").click()
    expect(page.get_by_role("switch", name="Newsletter by email")).to_be_checked()
    assert list(ledger.verify()) == []
