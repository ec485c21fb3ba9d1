"""No addresses, IPs (v4 or v6) or link tokens in the logs at INFO, web and worker alike.

The web flows run through the console handler ``LOGGING`` configures; the worker test runs
a real Celery worker whose SMTP server refuses the recipient, so the task's retry line
quotes the refusal (which names the address) at INFO.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.test import Client
from django.urls import reverse

from config.log_filters import RedactPersonalData
from subscribers import links, services, tokens
from subscribers.ledger import Evidence
from subscribers.models import ConfirmationRequest, ConsentEvent
from tests.conftest import WorkerProcess, free_port
from tests.e2e.campaign_helpers import wait_until
from tests.security.world import ADA_AGENT, ADA_IP, BOB_IP, build_world

IPV4_VISITOR, IPV6_VISITOR = "192.0.2.44", "2001:db8:4::44"
STAFF = Evidence(source=ConsentEvent.Source.ADMIN, actor=ConsentEvent.Actor.STAFF, actor_label="carl")
TOKEN_IN_TEXT = re.compile(r"/(?:u|t|preferences|confirm|email-change)/([^/\s\"'?\[]{12,})")


@pytest.fixture
def console(settings) -> Iterator[io.StringIO]:
    """What every configured log handler writes, at INFO, with DEBUG on as in development
    (Django's own console handler writes only then)."""
    settings.DEBUG = True
    root = logging.getLogger()
    assert any(isinstance(f, RedactPersonalData) for h in root.handlers for f in h.filters)
    loggers = [root, *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    handlers = {
        h
        for logger in loggers
        for h in getattr(logger, "handlers", [])
        if isinstance(h, logging.StreamHandler) and not type(h).__module__.startswith("_pytest")
    }
    buffer = io.StringIO()
    saved = {h: h.setStream(buffer) for h in handlers}
    saved_level = root.level
    root.setLevel(logging.INFO)
    yield buffer
    root.setLevel(saved_level)
    for handler, stream in saved.items():
        handler.setStream(stream)


def assert_no_personal_data(log: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in log, f"{secret!r} is in the log:\n{log}"
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", log), log
    assert not TOKEN_IN_TEXT.search(log), log


@pytest.mark.django_db
def test_web_flows_log_no_addresses_ips_or_tokens(console, consent_texts, settings, tmp_path, mailoutbox):
    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "hooks:right-secret"}
    world = build_world(consent_texts, tmp_path / "outbox")
    newsletter = consent_texts["newsletter"]
    for ip, email in ((IPV4_VISITOR, "eve@example.com"), (IPV6_VISITOR, "Zoe.Long+news@example.co.uk")):
        client = Client(REMOTE_ADDR=ip, HTTP_USER_AGENT="LogCheck/1")
        client.get("/")
        client.post("/", {"email": email, "name": "Eve", f"consent_{newsletter.pk}_email": "on"})
        client.post("/manage/", {"email": email})
        client.get("/preferences/not-a-real-token-at-all/")  # a 400 Django logs with its path
    request = ConfirmationRequest.objects.filter(subscriber__email="eve@example.com").get()
    client = Client(REMOTE_ADDR=IPV6_VISITOR)
    client.post(f"/confirm/{tokens.confirmation_token(request.pk)}/")
    unsubscribe = links.make("unsubscribe", world.ada.pk, world.text.purpose_id)
    client.post(
        f"/u/{unsubscribe}/", "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    client.get(f"/u/{unsubscribe}x/")
    client.get(f"/t/{world.token('tracking')}/1/")
    client.get(f"/t/{world.token('tracking')}broken/1/")
    client.post("/anymail/mailgun/tracking/", {"recipient": "ada@example.org"})  # no credentials
    client.post("/admin/login/", {"username": "ada@example.org", "password": "wrong"}, REMOTE_ADDR=BOB_IP)
    services.subscriber_erase(subscriber=world.bob, evidence=STAFF)
    # The development server's access line, as runserver's request handler writes it.
    request_line = f"GET /preferences/{world.token('preferences')}/ HTTP/1.1"
    logging.getLogger("django.server").info(
        '"%s" %s %s', request_line, "200", "1234", extra={"status_code": 200}
    )
    log = console.getvalue()
    sent_tokens = [m.group(1) for mail in mailoutbox for m in TOKEN_IN_TEXT.finditer(str(mail.body))]
    assert sent_tokens, "the flows sent no links to look for"
    assert "INFO" in log and "[token]" in log, log  # the flows did log, masked
    assert_no_personal_data(
        log,
        IPV4_VISITOR,
        IPV6_VISITOR,
        ADA_IP,
        BOB_IP,
        ADA_AGENT,
        "eve@example.com",
        "Zoe.Long",
        unsubscribe,
        world.token("preferences"),
        *sent_tokens,
    )


class RefusingSMTP:
    """An SMTP server that refuses every recipient, quoting the address as servers do."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected: user unknown"


@pytest.mark.e2e
def test_a_worker_retrying_a_refused_address_logs_neither_the_address_nor_the_link(
    start_celery_worker: Callable[..., WorkerProcess], consent_texts
):
    port = free_port()
    controller = Controller(RefusingSMTP(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        worker = start_celery_worker(EMAIL_URL=f"smtp://127.0.0.1:{port}")
        newsletter = consent_texts["newsletter"]
        client = Client(REMOTE_ADDR=IPV6_VISITOR)
        client.post(
            reverse("subscribers:signup"),
            {"email": "refused@example.com", f"consent_{newsletter.pk}_email": "on"},
        )
        wait_until(lambda: " retry: " in worker.log(), timeout=30, what="the task to retry", log=worker.log)
    finally:
        controller.stop()
    log = worker.log()
    assert "SMTPRecipientsRefused" in log and "[address]" in log, log  # the refusal is there, masked
    assert_no_personal_data(log, "refused@example.com", IPV6_VISITOR)
