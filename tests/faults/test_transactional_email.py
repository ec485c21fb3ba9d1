"""A visitor signs up while the broker is down: the signup stands, the page answers as usual,
and the double opt-in email goes out once the broker is back (``send_unsent_emails``)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from subscribers import tasks as subscriber_tasks
from subscribers.models import ConfirmationRequest, ConsentEvent
from tests.conftest import SMTPServer, WorkerProcess
from tests.e2e import campaign_helpers as helpers
from tests.faults.conftest import RedisProcess

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ADDRESS = "offline.broker@example.org"


def test_a_signup_while_the_broker_is_down_is_kept_and_confirmed_later(
    consent_texts,
    private_redis: RedisProcess,
    smtp_server: SMTPServer,
    start_celery_worker: Callable[..., WorkerProcess],
):
    client = Client()
    page = client.get(reverse("subscribers:signup"))
    assert page.status_code == 200
    private_redis.crash()

    newsletter = consent_texts["newsletter"]
    answer = client.post(
        reverse("subscribers:signup"),
        {
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
            "email": ADDRESS,
            f"consent_{newsletter.pk}_email": "on",
        },
    )
    # The visitor sees what every visitor sees; nothing of the signup is lost.
    assert answer.status_code == 302
    assert answer["Location"] == reverse("subscribers:check_inbox")
    request = ConfirmationRequest.objects.get(subscriber__email=ADDRESS)
    assert request.email_sent_at is None
    assert ConsentEvent.objects.filter(request=request, kind=ConsentEvent.Kind.REQUESTED).count() == 1
    # Asking for a preferences link answers as usual too (nothing is stored for it).
    manage = client.post(reverse("subscribers:manage"), {"email": ADDRESS})
    assert manage.status_code == 302

    private_redis.start()
    worker = start_celery_worker(
        **helpers.worker_env(smtp_server.url, CELERY_BROKER_URL=private_redis.url(0))
    )
    # Nothing is queued again before UNSENT_EMAIL_AFTER_SECONDS: the first task may be on its way.
    assert subscriber_tasks.send_unsent_emails() == 0
    ConfirmationRequest.objects.filter(pk=request.pk).update(
        created_at=request.created_at - timedelta(seconds=settings.UNSENT_EMAIL_AFTER_SECONDS + 1)
    )
    assert subscriber_tasks.send_unsent_emails() == 1

    [mail] = smtp_server.wait_for(1, timeout=30)
    assert mail.rcpt_tos == [ADDRESS], worker.log()
    text = mail.message.get_body(preferencelist=("plain",))
    assert text is not None
    assert re.search(r"/confirm/[^/\s]+/", text.get_content())
    deadline = time.monotonic() + 10
    while ConfirmationRequest.objects.get(pk=request.pk).email_sent_at is None:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.1)
    # Once sent, never again.
    assert subscriber_tasks.send_unsent_emails() == 0
    time.sleep(1)
    assert len(smtp_server.messages) == 1
