"""Dispatch: once per recipient, consent re-checked per batch, retries, and recovery."""

from __future__ import annotations

import smtplib
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from marketing import dispatch, rendering, services, tasks
from marketing.models import Campaign, Delivery
from subscribers import services as subscriber_services
from subscribers.models import Channel
from tests.conftest import SMTPServer, free_port
from tests.marketing.backends import ScriptedBackend, sent_to
from tests.marketing.conftest import WEB

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scripted_backend(settings):
    settings.EMAIL_BACKEND = "tests.marketing.backends.ScriptedBackend"
    settings.DISPATCH_BATCH_SIZE = 2
    settings.DISPATCH_RETRY_BASE_SECONDS = 0
    ScriptedBackend.failures = []
    ScriptedBackend.refused = set()
    yield


@pytest.fixture
def campaign(consent_texts, audience, mailoutbox):
    mailoutbox.clear()  # the audience's confirmation emails
    return services.campaign_create(
        actor=None,
        name="News",
        purpose=consent_texts["newsletter"].purpose,
        subject="News",
        body="Hi {{ first_name }}",
    )


def start_without_running(campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        services.campaign_send(campaign_id=campaign.pk, actor=None)


def statuses(campaign) -> Counter:
    return Counter(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))


def test_every_eligible_recipient_gets_it_once(audience, campaign, mailoutbox):
    services.campaign_send(campaign_id=campaign.pk, actor=None)  # the run task executes eagerly
    assert sorted(sent_to()) == sorted(s.email for s in audience.eligible)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert (campaign.sent_count, campaign.failed_count, campaign.skipped_count) == (5, 0, 0)
    assert all(d.provider_message_id for d in Delivery.objects.filter(campaign=campaign))
    # Running again sends nothing more.
    dispatch.run(campaign_id=campaign.pk)
    assert len(mailoutbox) == 5


def test_a_sender_with_an_international_domain_gets_ascii_message_ids(audience, campaign, settings):
    settings.SENDER_EMAIL = "news@münchen.example"  # RFC 5322: a Message-ID is ASCII
    services.campaign_send(campaign_id=campaign.pk, actor=None)
    ids = list(Delivery.objects.filter(campaign=campaign).values_list("provider_message_id", flat=True))
    assert len(ids) == 5
    assert all(i.isascii() and i.endswith("@xn--mnchen-3ya.example>") for i in ids), ids


def test_withdrawal_takes_effect_before_the_next_batch(
    audience, campaign, mailoutbox, django_capture_on_commit_callbacks
):
    start_without_running(campaign, django_capture_on_commit_callbacks)
    prepared = rendering.prepare(campaign)
    first = dispatch.claim_batch(campaign_id=campaign.pk, size=2)
    dispatch.send_batch(campaign=campaign, prepared=prepared, delivery_ids=first)
    later = Delivery.objects.filter(campaign=campaign, status=Delivery.Status.QUEUED).order_by("id").first()
    subscriber_services.consent_withdraw(
        subscriber=later.subscriber, purpose=campaign.purpose, channel=Channel.EMAIL, evidence=WEB
    )
    dispatch.run(campaign_id=campaign.pk)
    assert later.subscriber.email not in sent_to()
    assert len(mailoutbox) == 4
    later.refresh_from_db()
    assert later.status == Delivery.Status.SKIPPED
    campaign.refresh_from_db()
    assert (campaign.sent_count, campaign.skipped_count, campaign.status) == (4, 1, Campaign.Status.SENT)


def test_a_batch_left_by_a_dead_worker_is_reclaimed_after_the_lease(
    audience, campaign, mailoutbox, settings, django_capture_on_commit_callbacks
):
    start_without_running(campaign, django_capture_on_commit_callbacks)
    orphaned = dispatch.claim_batch(campaign_id=campaign.pk, size=2)  # the worker dies here
    dispatch.run(campaign_id=campaign.pk)
    assert len(mailoutbox) == 3  # the orphaned batch is still within its lease
    Delivery.objects.filter(id__in=orphaned).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.DISPATCH_LEASE_SECONDS + 1)
    )
    dispatch.run(campaign_id=campaign.pk)
    assert sorted(sent_to()) == sorted(s.email for s in audience.eligible)
    assert statuses(campaign) == {"sent": 5}


def test_temporary_failures_are_retried_and_permanent_ones_recorded(audience, campaign, mailoutbox):
    ScriptedBackend.failures = [smtplib.SMTPServerDisconnected("connection lost")]
    ScriptedBackend.refused = {audience.eligible[3].email}
    services.campaign_send(campaign_id=campaign.pk, actor=None)
    dispatch.run(campaign_id=campaign.pk)  # retry_after has passed (base delay 0)
    assert statuses(campaign) == {"sent": 4, "failed": 1}
    failed = Delivery.objects.get(campaign=campaign, status=Delivery.Status.FAILED)
    assert failed.subscriber == audience.eligible[3]
    assert "550" in failed.error or "no such user" in failed.error
    assert Counter(sent_to()) == Counter({s.email: 1 for s in audience.eligible if s != audience.eligible[3]})
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_a_campaign_that_keeps_failing_pauses_itself_and_says_why(audience, campaign, settings):
    settings.DISPATCH_FAILURE_MIN_SAMPLE = 2
    settings.DISPATCH_MAX_FAILURE_RATE = 0.5
    ScriptedBackend.refused = {s.email for s in audience.eligible}
    services.campaign_send(campaign_id=campaign.pk, actor=None)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "failed" in campaign.paused_reason
    assert statuses(campaign)[Delivery.Status.QUEUED] == 3  # stopped after the first batch


class PipeliningServer(SMTPServer):
    """aiosmtpd offering PIPELINING (RFC 2920), as Postfix does; refuses one recipient."""

    refused: str = ""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address == self.refused:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_over_smtp_with_pipelining_each_message_arrives_once_and_a_refusal_is_recorded(
    audience, campaign, settings
):
    from aiosmtpd.controller import Controller

    server = PipeliningServer(host="127.0.0.1", port=free_port())
    server.refused = audience.eligible[2].email
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = server.host, server.port
    try:
        services.campaign_send(campaign_id=campaign.pk, actor=None)
    finally:
        controller.stop()
    others = [s for s in audience.eligible if s.email != server.refused]
    assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(s.email for s in others)
    assert all(len(m.rcpt_tos) == 1 for m in server.messages)
    refused = Delivery.objects.get(campaign=campaign, subscriber=audience.eligible[2])
    assert refused.status == Delivery.Status.FAILED and "550 5.1.1 no such user here" in refused.error
    sent = {d.subscriber.email: d for d in Delivery.objects.filter(campaign=campaign, status="sent")}
    for mail in server.messages:
        message = mail.message
        # The Message-ID recorded is the one the message carried.
        assert sent[mail.rcpt_tos[0]].provider_message_id == message["Message-ID"]
        assert str(message["Subject"]) == "News" and message["To"] == mail.rcpt_tos[0]
        text = message.get_body(preferencelist=("plain",))
        assert text is not None and "Hi " in text.get_content()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent_count, campaign.failed_count) == (Campaign.Status.SENT, 4, 1)


def test_a_claim_starts_after_the_runners_last_one_and_still_finds_retries_behind_it(
    audience, campaign, django_capture_on_commit_callbacks
):
    start_without_running(campaign, django_capture_on_commit_callbacks)
    ids = list(Delivery.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True))
    first = dispatch.claim_batch(campaign_id=campaign.pk, size=2)
    assert first == ids[:2]
    # The first one failed for now and is due again; the runner goes on past its last claim.
    Delivery.objects.filter(id=first[0]).update(status=Delivery.Status.QUEUED, retry_after=timezone.now())
    assert dispatch.claim_batch(campaign_id=campaign.pk, size=2, after=max(first)) == ids[2:4]
    assert dispatch.claim_batch(campaign_id=campaign.pk, size=2, after=ids[3]) == ids[4:]
    # Nothing is due past the last claim: the whole campaign is looked at, and the retry found.
    assert dispatch.claim_batch(campaign_id=campaign.pk, size=2, after=ids[-1]) == [first[0]]
    assert dispatch.claim_batch(campaign_id=campaign.pk, size=2, after=ids[-1]) == []


def test_a_run_hands_its_worker_back_after_its_time_and_the_task_queues_it_again(
    audience, campaign, mailoutbox, settings, django_capture_on_commit_callbacks
):
    start_without_running(campaign, django_capture_on_commit_callbacks)
    settings.DISPATCH_BATCH_SIZE = 2
    settings.DISPATCH_RUN_SECONDS = 0
    outcome = dispatch.run(campaign_id=campaign.pk)
    assert (outcome.sent, outcome.more, len(mailoutbox)) == (2, True, 2)
    assert statuses(campaign) == {"sent": 2, "queued": 3}
    # The task queues the next turn itself (run at once here: Celery is eager in these tests).
    tasks.run_campaign(campaign.pk)
    assert sorted(sent_to()) == sorted(s.email for s in audience.eligible)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_the_next_turn_claims_on_from_the_last_one_and_a_stale_claim_behind_it_is_still_sent(
    audience, campaign, mailoutbox, settings, monkeypatch, django_capture_on_commit_callbacks
):
    start_without_running(campaign, django_capture_on_commit_callbacks)
    settings.DISPATCH_RUN_SECONDS = 0  # one batch of 2 a turn
    deliveries = Delivery.objects.filter(campaign=campaign).order_by("id").select_related("subscriber")
    ids = [d.id for d in deliveries]
    email = {d.id: d.subscriber.email for d in deliveries}
    # A worker died holding the first delivery, long enough ago for its lease to be over.
    assert dispatch.claim_batch(campaign_id=campaign.pk, size=1) == ids[:1]
    Delivery.objects.filter(id=ids[0]).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.DISPATCH_LEASE_SECONDS + 1)
    )
    # The second message of the first batch fails for now, and is due again at once.
    ScriptedBackend.failures = [None, smtplib.SMTPServerDisconnected("connection lost")]
    turns: list[tuple[int, ...]] = []
    monkeypatch.setattr(tasks.run_campaign, "delay", lambda *args: turns.append(args))

    tasks.run_campaign(campaign.pk)
    assert (sent_to(), turns) == ([email[ids[1]]], [(campaign.pk, ids[2])])
    # The next turn goes on past the hint before the retry and the stale claim behind it.
    tasks.run_campaign(*turns.pop())
    assert (sent_to()[1:], turns) == ([email[ids[3]], email[ids[4]]], [(campaign.pk, ids[4])])
    # Nothing is due past the hint: the whole campaign is looked at.
    tasks.run_campaign(*turns.pop())
    assert (sorted(sent_to()[3:]), turns) == (sorted([email[ids[0]], email[ids[2]]]), [(campaign.pk, ids[2])])
    tasks.run_campaign(*turns.pop())
    assert turns == []
    assert Counter(sent_to()) == Counter(s.email for s in audience.eligible)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent_count) == (Campaign.Status.SENT, 5)
