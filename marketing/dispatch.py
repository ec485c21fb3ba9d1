"""Sending mechanics: claim a batch, re-check consent, send, record. No Celery here.

Guarantees:
- A recipient is sent a campaign at most once in normal operation: each Delivery row is
  claimed by one worker (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite
  serialises writers) and marked sent right after the provider accepts it.
- A worker that dies leaves its claimed batch behind; after ``DISPATCH_LEASE_SECONDS``
  another worker reclaims it. Re-sends are limited to that one batch.
- Consent and suppression are re-checked for every batch just before it is sent, through
  the one sending selector, so a withdrawal takes effect before the next batch.
- No network call happens inside a database transaction.
- Open and click tracking only for subscribers who agreed to it, checked per batch like
  consent: they get the tracked copy (``tracking.tracked_copy``), everyone else the plain
  one; the provider is never allowed its own tracking (``tracking.disable_provider_tracking``).
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import formatdate, make_msgid
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.db import connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from marketing import batch_backends, batching, guardrails, rendering, services, throttle, tracking
from marketing.models import Campaign, Delivery
from subscribers import services as subscriber_services
from subscribers.addresses import smtp_address
from subscribers.id_arrays import in_ids
from subscribers.selectors import sendable_consents

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    provider_ids: dict[int, str] = field(default_factory=dict)
    # Set when temporary failures reached DISPATCH_MAX_ATTEMPTS: the provider is down for long.
    outage: str = ""


def claim_batch(*, campaign_id: int, size: int, after: int = 0) -> list[int]:
    """Claim up to ``size`` deliveries that are due: queued, or claimed by a worker presumed dead.

    ``after``: the highest id this runner claimed before. Deliveries are claimed in id order,
    so below it everything is sent, in flight or waiting for a retry. The first query takes
    the queued rows past it, which is an ordered range of the claim index whatever the
    planner's statistics say: at a million recipients, the one query for everything due cost
    ~0.25 s a claim (it sorted every queued row, or scanned the primary key from the start
    past every row already sent). Only when nothing is queued past ``after`` is the whole
    campaign looked at, so retries and batches left by a dead worker are still found, later.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.DISPATCH_LEASE_SECONDS)
    due = Q(status=Delivery.Status.QUEUED) & (Q(retry_after__isnull=True) | Q(retry_after__lte=now))
    abandoned = Q(status=Delivery.Status.CLAIMED, claimed_at__lt=stale)
    deliveries = Delivery.objects.filter(campaign_id=campaign_id)
    with transaction.atomic():
        ids: list[int] = []
        for claimable in (deliveries.filter(due, id__gt=after), deliveries.filter(due | abandoned)):
            ids = list(
                claimable.order_by("id")
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[:size]
            )
            if ids:
                break
        if ids:
            # Counting attempts at claim time also catches a batch that kills its worker every time.
            Delivery.objects.filter(id__in=in_ids(ids)).update(
                status=Delivery.Status.CLAIMED, claimed_at=now, attempts=F("attempts") + 1
            )
    return ids


@dataclass(frozen=True)
class RunOutcome:
    sent: int
    # Seconds until the earliest retry is due, when retries are all that is left.
    next_retry_in: float | None = None
    # The run used up its DISPATCH_RUN_SECONDS with batches still due: queue it again.
    more: bool = False


def run(*, campaign_id: int) -> RunOutcome:
    """Send batches of ``campaign_id`` until none is due, the campaign stops sending, or
    ``DISPATCH_RUN_SECONDS`` have passed (``more``): a worker then takes the tasks queued
    meanwhile, such as someone's double opt-in email, before this campaign's next turn."""
    started = time.monotonic()
    total = 0
    prepared: rendering.PreparedCampaign | None = None
    tracked: rendering.PreparedCampaign | None = None
    after = 0
    while True:
        campaign = Campaign.objects.select_related("purpose", "layout").get(pk=campaign_id)
        if campaign.status != Campaign.Status.SENDING:
            return RunOutcome(sent=total)
        ids = claim_batch(campaign_id=campaign_id, size=settings.DISPATCH_BATCH_SIZE, after=after)
        if not ids:
            if services.campaign_finish_if_done(campaign_id=campaign_id):
                return RunOutcome(sent=total)
            return RunOutcome(sent=total, next_retry_in=_next_retry_in(campaign_id))
        if prepared is None or tracked is None:
            prepared = rendering.prepare(campaign)
            tracked = tracking.tracked_copy(prepared, campaign)
        after = max(ids)
        result = send_batch(campaign=campaign, prepared=prepared, tracked=tracked, delivery_ids=ids)
        total += result.sent
        if result.outage:
            _pause_for_outage(campaign_id, result.outage)
            return RunOutcome(sent=total)
        _pause_if_failing(campaign_id)
        # Complaints and bounces arrive by webhook; the sample they are measured on grows here.
        guardrails.campaign_guard(campaign_id=campaign_id)
        if time.monotonic() - started >= settings.DISPATCH_RUN_SECONDS:
            return RunOutcome(sent=total, more=True)


def send_batch(
    *,
    campaign: Campaign,
    prepared: rendering.PreparedCampaign,
    delivery_ids: list[int],
    tracked: rendering.PreparedCampaign | None = None,
) -> BatchResult:
    """Send the claimed ``delivery_ids``: ``prepared`` to most, ``tracked`` (made from
    ``prepared`` when not given) to those who agreed to tracking."""
    rows = list(
        Delivery.objects.filter(id__in=in_ids(delivery_ids), status=Delivery.Status.CLAIMED).values_list(
            "id",
            "subscriber_id",
            "subscriber__email",
            "subscriber__name",
            "subscriber__link_generation",
            "attempts",
        )
    )
    consented = dict(
        sendable_consents(purpose_id=campaign.purpose_id)
        .filter(subscriber_id__in=in_ids(r[1] for r in rows))
        .order_by()
        .values_list("subscriber_id", "confirmed_at")
    )
    trackable = tracking.trackable_subscriber_ids(subscriber_ids=consented)
    tracking_url = tracking.url_maker() if trackable else None
    if trackable and tracked is None:
        tracked = tracking.tracked_copy(prepared, campaign)
    result = BatchResult()
    outcomes: dict[int, tuple[str, str, str]] = {}  # delivery id -> (status, provider id, error)
    to_send = []
    for delivery_id, subscriber_id, email, name, generation, attempts in rows:
        if subscriber_id not in consented or not email:
            outcomes[delivery_id] = (Delivery.Status.SKIPPED, "", "no longer eligible at send time")
            continue
        recipient = rendering.Recipient(
            subscriber_id=subscriber_id,
            email=smtp_address(email),  # IDNA 2008, before Django's IDNA 2003 sees it
            name=name,
            consented_at=consented[subscriber_id],
            link_generation=generation,
            tracking_url=tracking_url(delivery_id) if tracking_url and subscriber_id in trackable else "",
        )
        to_send.append((delivery_id, attempts, recipient))

    retry: dict[int, tuple[int, float]] = {}  # delivery id -> (attempts, delay seconds)
    if to_send:
        throttle.acquire(len(to_send))
    if to_send and batching.supported():
        # One call per copy: a provider personalises values, not which body a recipient gets.
        for copy, group in (
            (tracked, [t for t in to_send if t[2].tracking_url]),
            (prepared, [t for t in to_send if not t[2].tracking_url]),
        ):
            if group and copy is not None:
                _send_as_one(
                    campaign_id=campaign.pk, prepared=copy, to_send=group, outcomes=outcomes, retry=retry
                )
    elif to_send:
        _send_one_by_one(
            campaign_id=campaign.pk,
            copies=(prepared, tracked or prepared),
            to_send=to_send,
            outcomes=outcomes,
            retry=retry,
        )
    subscriber_of = {row[0]: row[1] for row in rows}
    carried = {delivery_id for delivery_id, _, recipient in to_send if recipient.tracking_url}
    _record(
        campaign=campaign,
        outcomes=outcomes,
        retry=retry,
        result=result,
        subscriber_of=subscriber_of,
        tracked_ids=carried,
    )
    return result


def _send_one_by_one(
    *,
    campaign_id: int,
    copies: tuple[rendering.PreparedCampaign, rendering.PreparedCampaign],
    to_send: list[tuple[int, int, rendering.Recipient]],
    outcomes: dict[int, tuple[str, str, str]],
    retry: dict[int, tuple[int, float]],
) -> None:
    """One message per recipient over one connection; ``copies`` is (plain, tracked).

    Over Django's SMTP backend the messages are bytes from a frame made once per copy
    (``rendering.smtp_frame``) and go straight to its smtplib connection; SMTP has no
    provider tracking to turn off. Other backends get ``EmailMessage`` objects.
    """
    connection = get_connection()
    fast = type(connection) is SMTPBackend
    frames = [rendering.smtp_frame(copy) for copy in copies] if fast else []
    link_maker = rendering.LinkMaker()
    date = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
    domain = _sender_domain()
    try:
        connection.open()
        smtp = connection.connection if isinstance(connection, SMTPBackend) else None
        for index, (delivery_id, attempts, recipient) in enumerate(to_send):
            copy = bool(recipient.tracking_url)
            message_id = make_msgid(domain=domain)
            raw: bytes | None = None
            if fast:
                raw = frames[copy].message(recipient, link_maker=link_maker, message_id=message_id, date=date)
            message = None
            if raw is None:
                message = tracking.disable_provider_tracking(
                    rendering.build_message(copies[copy], recipient, connection=connection)
                )
                message.extra_headers["Message-ID"] = message_id
                # Comes back with the provider's webhook events (anymail metadata), as in a batch.
                message.metadata = {  # type: ignore[attr-defined]
                    batching.DELIVERY_ID: str(delivery_id),
                    batching.CAMPAIGN_ID: str(campaign_id),
                }
            try:
                if raw is not None and smtp is not None:
                    _sendmail(smtp, frames[copy].sender, recipient.email, raw)
                elif message is not None:
                    message.send()
            except (AnymailRecipientsRefused, smtplib.SMTPRecipientsRefused) as exc:
                outcomes[delivery_id] = (Delivery.Status.FAILED, "", _refusal(exc))
            except (AnymailAPIError, smtplib.SMTPException, OSError) as exc:
                delay = _retry_delay(exc, attempts)
                if delay is None:
                    outcomes[delivery_id] = (Delivery.Status.FAILED, "", _short(exc))
                    continue
                # The connection or provider is unwell: put back the rest of the batch too.
                for later_id, later_attempts, _ in to_send[index:]:
                    retry[later_id] = (later_attempts, delay)
                logger.warning("campaign %s: sending paused for %.0fs: %s", campaign_id, delay, _short(exc))
                break
            else:
                provider_id = _provider_id(message) if message is not None else message_id
                outcomes[delivery_id] = (Delivery.Status.SENT, provider_id, "")
    finally:
        connection.close()


def _sendmail(smtp: smtplib.SMTP, sender: str, to: str, raw: bytes) -> None:
    """``smtp.sendmail(sender, [to], raw)`` for two plain addresses (``rendering.Frame``
    took only those), raising what it raises, without parsing both addresses again for
    every message (``smtplib.quoteaddr``, ~8% of a message's CPU in cProfile).

    Where the server offers PIPELINING (RFC 2920; Postfix does), MAIL, RCPT and DATA go in
    one write and their replies are read together: two round trips a message instead of
    four, which is what a busy machine spends most of a batch waiting for.
    """
    smtp.ehlo_or_helo_if_needed()
    options = f" size={len(raw)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    mail, rcpt = f"MAIL FROM:<{sender}>{options}", f"RCPT TO:<{to}>"
    if not (smtp.does_esmtp and smtp.has_extn("pipelining")):
        _check_envelope(smtp, smtp.docmd(mail), None, sender, to)
        _check_envelope(smtp, (250, b""), smtp.docmd(rcpt), sender, to)
        code, response = smtp.data(raw)
    else:
        smtp.send(f"{mail}\r\n{rcpt}\r\nDATA\r\n")
        replies = smtp.getreply(), smtp.getreply(), smtp.getreply()
        if replies[2][0] == 354 and (replies[0][0] != 250 or replies[1][0] not in (250, 251)):
            # RFC 2920 §3.1: the server took DATA anyway; end the empty message.
            smtp.send(".\r\n")
            smtp.getreply()
        _check_envelope(smtp, replies[0], replies[1], sender, to)
        if replies[2][0] != 354:
            _rset(smtp)
            raise smtplib.SMTPDataError(*replies[2])
        # smtplib.SMTP.data's framing: dot-stuffing, then CRLF.CRLF.
        body = smtplib._quote_periods(raw)  # type: ignore[attr-defined]
        smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        code, response = smtp.getreply()
    if code != 250:
        _rset(smtp)
        raise smtplib.SMTPDataError(code, response)


def _check_envelope(
    smtp: smtplib.SMTP, mail: tuple[int, bytes], rcpt: tuple[int, bytes] | None, sender: str, to: str
) -> None:
    if mail[0] != 250:
        _rset(smtp)
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if rcpt is not None and rcpt[0] not in (250, 251):
        _rset(smtp)
        raise smtplib.SMTPRecipientsRefused({to: rcpt})


def _rset(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()


def _send_as_one(
    *,
    campaign_id: int,
    prepared: rendering.PreparedCampaign,
    to_send: list[tuple[int, int, rendering.Recipient]],
    outcomes: dict[int, tuple[str, str, str]],
    retry: dict[int, tuple[int, float]],
) -> None:
    """The whole batch in one provider API call, each recipient's copy personalised there."""
    recipients = {delivery_id: recipient for delivery_id, _, recipient in to_send}
    message = batching.build_message(prepared, recipients, connection=batch_backends.connection())
    tracking.disable_provider_tracking(message)

    try:
        message.send()
    except AnymailRecipientsRefused as exc:
        for delivery_id in recipients:
            outcomes[delivery_id] = (Delivery.Status.FAILED, "", _refusal(exc))
    except (AnymailAPIError, OSError) as exc:
        if len(to_send) > 1 and _refuses_the_call(exc):
            # Mailgun answers 400 for the whole call when one address is bad: halve until it is alone.
            half = len(to_send) // 2
            for part in (to_send[:half], to_send[half:]):
                _send_as_one(
                    campaign_id=campaign_id, prepared=prepared, to_send=part, outcomes=outcomes, retry=retry
                )
            return
        # One call for everyone: a temporary failure puts the whole batch back.
        delay = _retry_delay(exc, max(attempts for _, attempts, _ in to_send))
        for delivery_id, attempts, _ in to_send:
            if delay is None:
                outcomes[delivery_id] = (Delivery.Status.FAILED, "", _refusal(exc))
            else:
                retry[delivery_id] = (attempts, delay)
        if delay is not None:
            logger.warning("campaign %s: sending paused for %.0fs: %s", campaign_id, delay, _short(exc))
    else:
        for delivery_id, (accepted, provider_id, error) in batching.recipient_outcomes(
            message, recipients
        ).items():
            status = Delivery.Status.SENT if accepted else Delivery.Status.FAILED
            outcomes[delivery_id] = (status, provider_id, error)


def _record(
    *,
    campaign: Campaign,
    outcomes: dict[int, tuple[str, str, str]],
    retry: dict[int, tuple[int, float]],
    result: BatchResult,
    subscriber_of: dict[int, int],
    tracked_ids: set[int],
) -> None:
    campaign_id = campaign.pk
    now = timezone.now()
    with transaction.atomic():
        for status, _provider_id, _error in outcomes.values():
            result.sent += status == Delivery.Status.SENT
            result.failed += status == Delivery.Status.FAILED
            result.skipped += status == Delivery.Status.SKIPPED
        _write_outcomes(outcomes, now, tracked_ids)
        # A temporary failure never becomes a failed delivery (nor counts towards the failure
        # rate): past DISPATCH_MAX_ATTEMPTS the campaign pauses instead, keeping them queued.
        if any(attempts >= settings.DISPATCH_MAX_ATTEMPTS for attempts, _ in retry.values()):
            result.outage = f"{len(retry)} messages failed temporarily {settings.DISPATCH_MAX_ATTEMPTS} times"
        later: dict[float, list[int]] = {}
        for delivery_id, (_attempts, delay) in retry.items():
            later.setdefault(delay, []).append(delivery_id)
        for delay, ids in later.items():
            Delivery.objects.filter(pk__in=ids).update(
                status=Delivery.Status.QUEUED, retry_after=now + timedelta(seconds=delay)
            )
            result.retried += len(ids)
        services.campaign_count(
            campaign_id=campaign_id, sent=result.sent, failed=result.failed, skipped=result.skipped
        )
        # Their "at most weekly/monthly" choice counts from this send.
        subscriber_services.consents_mark_sent(
            purpose_id=campaign.purpose_id,
            subscriber_ids=[
                subscriber_of[d] for d, (status, _, _) in outcomes.items() if status == Delivery.Status.SENT
            ],
            at=now,
        )


def _write_outcomes(outcomes: dict[int, tuple[str, str, str]], now: datetime, tracked_ids: set[int]) -> None:
    """Every row's own status, provider id and error in ONE statement (UPDATE … FROM unnest),
    and ``Delivery.tracked`` for the messages that went out with tracking (what
    ``tracking.deliveries_mark_tracked`` does, without rewriting those rows a second time).

    ``bulk_update`` builds a CASE per row and field in Python: measured by ``make bench`` at
    about 0.5 ms a row, the largest cost of a provider batch; this is a few µs a row.
    """
    if not outcomes:
        return
    table = Delivery._meta.db_table
    rows = [
        (d, s, p, e[:500], s == Delivery.Status.SENT and d in tracked_ids)
        for d, (s, p, e) in outcomes.items()
    ]
    # The table name and placeholders are ours; every value is a parameter.
    if connection.vendor == "postgresql":
        # Five arrays, not five parameters a row: psycopg parses a statement with thousands
        # of placeholders in Python, every time (it was a tenth of a batch's CPU in cProfile).
        arrays = "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::boolean[]"
        source = f"unnest({arrays}) AS v(column1, column2, column3, column4, column5)"
        params: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    else:
        # VALUES columns are named column1… on SQLite too.
        source = f"(VALUES {', '.join(['(%s, %s, %s, %s, %s)'] * len(rows))}) AS v"
        params = [value for row in rows for value in row]
    sql = (
        f"UPDATE {table} SET status = v.column2, provider_message_id = v.column3, error = v.column4, "  # noqa: S608
        "sent_at = CASE WHEN v.column2 = %s THEN %s ELSE NULL END, tracked = v.column5 "
        f"FROM {source} WHERE {table}.id = v.column1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [Delivery.Status.SENT, connection.ops.adapt_datetimefield_value(now), *params])


def _next_retry_in(campaign_id: int) -> float | None:
    deliveries = Delivery.objects.filter(campaign_id=campaign_id)
    retry_at = deliveries.filter(status=Delivery.Status.QUEUED, retry_after__isnull=False).aggregate(
        at=Min("retry_after")
    )["at"]
    # A batch whose worker died (or lost its database connection) is due when its lease ends.
    claimed_at = deliveries.filter(status=Delivery.Status.CLAIMED).aggregate(at=Min("claimed_at"))["at"]
    lease_ends = claimed_at + timedelta(seconds=settings.DISPATCH_LEASE_SECONDS) if claimed_at else None
    due = [at for at in (retry_at, lease_ends) if at is not None]
    if not due:
        return None
    return max((min(due) - timezone.now()).total_seconds(), 0.0)


def _retry_delay(exc: Exception, attempts: int) -> float | None:
    """Seconds to wait before retrying, or None when the failure is permanent."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600:
        return None
    if status is not None and 400 <= status < 500 and status != 429:
        return None
    backoff = min(settings.DISPATCH_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), 3600.0)
    if status == 429:
        retry_after = exc.response.headers.get("Retry-After", "")  # type: ignore[attr-defined]
        wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else backoff
        throttle.hold(wait)
        return wait
    return backoff


def _refuses_the_call(exc: Exception) -> bool:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status in (400, 422)


def _pause_for_outage(campaign_id: int, what: str) -> None:
    with contextlib.suppress(services.CampaignStateError):  # already paused or cancelled
        services.campaign_pause(
            campaign_id=campaign_id,
            actor=None,
            reason=f"Paused automatically: the email provider kept failing ({what}). "
            "Nobody was marked failed; resume once it works again.",
        )


def _pause_if_failing(campaign_id: int) -> None:
    campaign = Campaign.objects.get(pk=campaign_id)
    done = campaign.sent_count + campaign.failed_count
    if done < settings.DISPATCH_FAILURE_MIN_SAMPLE:
        return
    rate = campaign.failed_count / done
    if rate > settings.DISPATCH_MAX_FAILURE_RATE:
        with contextlib.suppress(services.CampaignStateError):  # already paused or cancelled
            services.campaign_pause(
                campaign_id=campaign_id,
                actor=None,
                reason=f"Paused automatically: {rate:.0%} of messages failed "
                f"(limit {settings.DISPATCH_MAX_FAILURE_RATE:.0%}). Check the failures, then resume.",
            )


def _provider_id(message: object) -> str:
    status = getattr(message, "anymail_status", None)
    if status is not None and status.message_id:
        return str(status.message_id)
    return str(getattr(message, "extra_headers", {}).get("Message-ID", ""))


def _sender_domain() -> str:
    return settings.SENDER_EMAIL.rpartition("@")[2] or "localhost"


def _refusal(exc: Exception) -> str:
    """The receiving side's own words for a refused recipient, which anymail's message omits."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        reasons = [
            f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
            for code, text in exc.recipients.values()
        ]
        return _short(exc) + ": " + "; ".join(reasons)
    response = getattr(exc, "response", None)
    if response is None:
        return _short(exc)
    try:
        body = response.json()
        detail = body.get("Message") or body.get("message") if isinstance(body, dict) else str(body)
    except ValueError:
        detail = response.text
    return f"{_short(exc)}: {str(detail)[:300]}"


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
