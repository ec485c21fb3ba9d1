"""Double opt-in end to end: the web request, a real Celery worker, real delivery, the click.

Nothing is mocked: the signup is queued on the configured broker, a separate worker
process sends the confirmation through the configured email backend, and the test reads
the email back from where it was delivered (an SMTP server, or the outbox folder).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from config.outbox import read_message
from subscribers.models import ConfirmationRequest, ConsentEvent, ConsentState, Subscriber

pytestmark = pytest.mark.e2e

SIGNUP_IP, SIGNUP_AGENT = "203.0.113.10", "Mozilla/5.0 (X11; Linux x86_64) E2E-signup"
SCANNER_IP, SCANNER_AGENT = "192.0.2.77", "SafeLinks/1.0 (link scanner)"
CLICK_IP, CLICK_AGENT = "198.51.100.23", "Mozilla/5.0 (iPhone) E2E-click"
CONFIRM_LINK = re.compile(r"https?://\S+?/confirm/[^/\s]+/")


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def sign_up(client: Client, consent_texts, email: str) -> None:
    """Fill in the signup page as a visitor would, CSRF token included."""
    page = client.get(reverse("subscribers:signup"), REMOTE_ADDR=SIGNUP_IP, HTTP_USER_AGENT=SIGNUP_AGENT)
    assert page.status_code == 200
    newsletter = consent_texts["newsletter"]
    response = client.post(
        reverse("subscribers:signup"),
        {
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
            "email": email,
            "name": "Ada",
            f"consent_{newsletter.pk}_email": "on",
        },
        REMOTE_ADDR=SIGNUP_IP,
        HTTP_USER_AGENT=SIGNUP_AGENT,
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == reverse("subscribers:check_inbox")
    assert "Check your inbox" in client.get(response["Location"]).content.decode()


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def confirm_path(text: str) -> str:
    match = CONFIRM_LINK.search(text)
    assert match, f"no confirmation link in:\n{text}"
    return urlsplit(match.group(0)).path


def open_and_confirm(client: Client, path: str) -> None:
    # A link scanner (or the person) opening the link only sees a button.
    page = client.get(path, REMOTE_ADDR=SCANNER_IP, HTTP_USER_AGENT=SCANNER_AGENT)
    html = page.content.decode()
    assert page.status_code == 200
    assert re.search(r"<form[^>]*method=\"post\"", html, re.IGNORECASE)
    assert ConsentState.objects.get().status == ConsentState.Status.PENDING
    assert not ConsentEvent.objects.filter(kind=ConsentEvent.Kind.CONFIRMED).exists()
    # The click.
    done = client.post(
        path,
        {"csrfmiddlewaretoken": client.cookies["csrftoken"].value},
        REMOTE_ADDR=CLICK_IP,
        HTTP_USER_AGENT=CLICK_AGENT,
    )
    assert done.status_code == 200
    assert "subscribed" in done.content.decode()


def assert_confirmed_with_evidence(email: str) -> None:
    subscriber = Subscriber.objects.get(email=email)
    state = ConsentState.objects.get(subscriber=subscriber)
    assert (state.purpose.slug, state.channel, state.status) == ("newsletter", "email", "active")
    assert subscriber.name == "Ada"  # applied on confirmation
    events = list(
        ConsentEvent.objects.filter(subscriber=subscriber).select_related("evidence").order_by("seq")
    )
    assert [(e.kind, e.source) for e in events] == [
        ("requested", "signup_page"),
        ("confirmed", "confirmation_link"),
    ]
    requested, confirmed = events
    assert (requested.evidence.ip_address, requested.evidence.user_agent) == (SIGNUP_IP, SIGNUP_AGENT)
    assert (confirmed.evidence.ip_address, confirmed.evidence.user_agent) == (CLICK_IP, CLICK_AGENT)
    assert requested.consent_text_id == confirmed.consent_text_id == state.consent_text_id
    # The worker records the send just after handing the message over, maybe after our click.
    assert wait_until(
        lambda: ConfirmationRequest.objects.filter(
            subscriber=subscriber, email_sent_at__isnull=False
        ).exists()
    ), "the worker did not record the send"
    assert ConfirmationRequest.objects.get(subscriber=subscriber).confirmed_at is not None
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "verified" in out.getvalue().lower()


def test_signup_is_confirmed_through_a_worker_and_an_smtp_server(
    consent_texts, smtp_server, celery_worker_process
):
    client = Client(enforce_csrf_checks=True)
    sign_up(client, consent_texts, "ada@example.org")

    try:
        [mail] = smtp_server.wait_for(1, timeout=60)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n--- worker log ---\n{celery_worker_process.log()}")
    assert mail.mail_from == settings.SENDER_EMAIL
    assert mail.rcpt_tos == ["ada@example.org"]
    message = mail.message
    assert message["To"] == "ada@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"]
    text, html = body(message, "plain"), body(message, "html")
    path = confirm_path(text)
    assert path in html

    open_and_confirm(client, path)
    assert_confirmed_with_evidence("ada@example.org")
    # Confirming sends nothing more.
    time.sleep(1)
    assert len(smtp_server.messages) == 1


def test_the_outbox_backend_delivers_to_its_folder(consent_texts, start_celery_worker, tmp_path: Path):
    outbox = tmp_path / "outbox"
    worker = start_celery_worker(EMAIL_URL=f"outbox://{outbox}")
    client = Client(enforce_csrf_checks=True)
    sign_up(client, consent_texts, "grace@example.org")

    deadline = time.monotonic() + 60
    while not (files := sorted(outbox.glob("*.eml"))):
        if time.monotonic() > deadline:
            pytest.fail(f"no .eml in {outbox} after 60 s\n--- worker log ---\n{worker.log()}")
        time.sleep(0.2)
    assert len(files) == 1
    assert not list(outbox.glob("*.part"))
    message = read_message(files[0])
    assert message["To"] == "grace@example.org"
    assert settings.SENDER_EMAIL in message["From"]
    open_and_confirm(client, confirm_path(body(message, "plain")))
    assert_confirmed_with_evidence("grace@example.org")
