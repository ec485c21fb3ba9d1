"""The double opt-in and address-change emails go out once, even when the task queued at the
request and the sweep's copy (``tasks.send_unsent_emails``) run at the same moment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from smtplib import SMTPException
from typing import Any

import pytest
from django.core.mail.backends import locmem
from django.db import connection
from django.utils import timezone

from subscribers import emails, services, tasks
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConfirmationRequest, ConsentEvent, EmailChangeRequest, Subscriber

pytestmark = pytest.mark.django_db

EVIDENCE = Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE, ip_address="192.0.2.80", user_agent="UA")


@pytest.fixture
def unsent_confirmation(consent_texts, mailoutbox) -> str:
    outcome = services.subscriber_sign_up(
        email="grace@example.org",
        choices=[services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.EMAIL)],
        evidence=EVIDENCE,
    )
    assert outcome.request is not None
    # As if the broker had been down at signup: the email has not gone.
    ConfirmationRequest.objects.filter(pk=outcome.request.pk).update(email_sent_at=None)
    mailoutbox.clear()
    return str(outcome.request.pk)


@pytest.fixture
def unsent_change(confirmed_subscriber: Subscriber, mailoutbox) -> str:
    change = services.email_change_request(
        subscriber=confirmed_subscriber, new_email="ada.new@example.net", evidence=EVIDENCE
    )
    EmailChangeRequest.objects.filter(pk=change.pk).update(confirmation_sent_at=None, notice_sent_at=None)
    mailoutbox.clear()
    return str(change.pk)


def send_confirmation(unsent_confirmation: str, unsent_change: str) -> bool:
    return emails.send_confirmation(request_id=unsent_confirmation)


def send_change_confirmation(unsent_confirmation: str, unsent_change: str) -> bool:
    return emails.send_email_change_confirmation(change_id=unsent_change)


def send_change_notice(unsent_confirmation: str, unsent_change: str) -> bool:
    return emails.send_email_change_notice(change_id=unsent_change)


SENDS = [send_confirmation, send_change_confirmation, send_change_notice]


def run_while_sending(monkeypatch: pytest.MonkeyPatch, other: Callable[[], bool]) -> list[bool]:
    """Run ``other`` once, while the first message is in the mail backend's hands: the other
    task's copy arriving at the worst moment, after the check and before the sent mark."""
    results: list[bool] = []
    started: list[bool] = []
    deliver = locmem.EmailBackend.send_messages

    def send_messages(self: locmem.EmailBackend, messages: Any) -> int:
        if not started:
            started.append(True)
            results.append(other())
        return deliver(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", send_messages)
    return results


@pytest.mark.parametrize("send", SENDS)
def test_a_copy_that_runs_while_the_email_is_being_sent_sends_nothing(
    send, unsent_confirmation, unsent_change, mailoutbox, monkeypatch, caplog
):
    ids = (unsent_confirmation, unsent_change)
    copy = run_while_sending(monkeypatch, lambda: send(*ids))

    assert send(*ids) is True
    assert copy == [False]
    assert len(mailoutbox) == 1
    assert "is being sent by another task: this copy does nothing" in caplog.text
    # Once the mark is written the claim is gone and the mark alone keeps later copies out.
    assert send(*ids) is False
    assert len(mailoutbox) == 1


def test_the_two_address_change_emails_do_not_hold_each_other_back(
    unsent_confirmation, unsent_change, mailoutbox, monkeypatch
):
    notice = run_while_sending(monkeypatch, lambda: send_change_notice(unsent_confirmation, unsent_change))

    assert send_change_confirmation(unsent_confirmation, unsent_change) is True
    assert notice == [True]
    assert sorted(m.to[0] for m in mailoutbox) == ["ada.new@example.net", "ada@example.org"]


def test_the_sweep_and_the_first_task_together_send_the_confirmation_once(
    unsent_confirmation, mailoutbox, monkeypatch, settings
):
    old = timezone.now() - timedelta(seconds=settings.UNSENT_EMAIL_AFTER_SECONDS + 1)
    ConfirmationRequest.objects.filter(pk=unsent_confirmation).update(created_at=old)
    # The late first task is sending when the sweep runs and (eagerly) sends its copy.
    swept = run_while_sending(monkeypatch, tasks.send_unsent_emails)

    tasks.send_confirmation_email(unsent_confirmation)
    assert swept == [1]
    assert [m.to for m in mailoutbox] == [["grace@example.org"]]


@pytest.mark.django_db(transaction=True)
def test_two_workers_sending_the_same_confirmation_at_once_send_it_once(
    unsent_confirmation, mailoutbox, monkeypatch
):
    """As on two workers: two threads, each with its own database connection."""
    first = threading.current_thread()
    first_is_sending, second_is_done = threading.Event(), threading.Event()
    deliver = locmem.EmailBackend.send_messages

    def send_messages(self: locmem.EmailBackend, messages: Any) -> int:
        if threading.current_thread() is first:
            first_is_sending.set()
            second_is_done.wait(timeout=10)
        return deliver(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", send_messages)
    second: list[bool] = []

    def other_worker() -> None:
        try:
            first_is_sending.wait(timeout=10)
            second.append(emails.send_confirmation(request_id=unsent_confirmation))
        finally:
            second_is_done.set()
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert emails.send_confirmation(request_id=unsent_confirmation) is True
    thread.join(timeout=20)
    assert second == [False]
    assert len(mailoutbox) == 1


def fail_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: locmem.EmailBackend, messages: Any) -> int:
        raise SMTPException("421 try again later")

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", refuse)


@pytest.mark.parametrize("send", SENDS)
def test_a_failed_send_gives_the_claim_back_so_the_retry_sends_at_once(
    send, unsent_confirmation, unsent_change, mailoutbox, monkeypatch
):
    ids = (unsent_confirmation, unsent_change)
    with monkeypatch.context() as patch:
        fail_sending(patch)
        with pytest.raises(SMTPException):
            send(*ids)

    assert send(*ids) is True
    assert len(mailoutbox) == 1


@pytest.mark.parametrize("send", SENDS)
def test_the_claim_of_a_worker_that_died_mid_send_lapses_and_a_later_retry_sends(
    send, unsent_confirmation, unsent_change, mailoutbox, monkeypatch, settings
):
    settings.TRANSACTIONAL_EMAIL_CLAIM_SECONDS = 1
    ids = (unsent_confirmation, unsent_change)
    with monkeypatch.context() as patch:
        fail_sending(patch)
        # A dead worker runs no ``finally``: its claim stays in the cache.
        patch.setattr(emails, "_release", lambda key, token: None)
        with pytest.raises(SMTPException):
            send(*ids)

    assert send(*ids) is False
    assert mailoutbox == []
    time.sleep(1.2)
    assert send(*ids) is True
    assert len(mailoutbox) == 1
