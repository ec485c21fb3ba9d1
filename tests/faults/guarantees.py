"""The five guarantees every fault test checks, and the row each test adds to the table.

1. The campaign finishes (status "sent").
2. Every eligible recipient is sent to: everyone in the snapshot whose consent still holds
   and whom the provider did not refuse for good.
3. Re-sends stay within the batch in flight: at most one batch of extra copies.
4. No record is lost: one delivery per snapshot row, each in a final state matching what
   arrived, the campaign's counters equal to its rows, the consent ledger verifies
   (``verify_ledger``) with every withdrawal in it, and the audit trail has the start and
   the finish once each.
5. Nobody whose consent was withdrawn (before or during the fault), nobody unconfirmed and
   nobody suppressed is sent to.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.core.management import call_command
from django.db import transaction
from django.db.models import F

from marketing import tasks
from marketing.models import Campaign, CampaignAction, Delivery
from subscribers.models import Channel, ConsentEvent, ConsentState, Subscriber
from tests.e2e import campaign_helpers as helpers


@dataclass(frozen=True)
class Row:
    fault: str
    recipients: int
    sent: int
    duplicates: int
    lost: int


ROWS: list[Row] = []


@contextlib.contextmanager
def withdrawal_during_fault(campaign: Campaign, audience: helpers.Audience) -> Iterator[Subscriber]:
    """Lock the last recipient due before any worker runs; on leaving the block (once the
    fault has happened), withdraw their consent and let go.

    Workers claim with SKIP LOCKED, so the campaign cannot finish, however fast it goes,
    before the withdrawal is in: the withdrawal falls during the fault by construction.
    """
    with transaction.atomic():
        delivery = (
            Delivery.objects.filter(campaign=campaign, status=Delivery.Status.QUEUED)
            .order_by("-id")
            .select_for_update(of=("self",))
            .select_related("subscriber")
            .first()
        )
        assert delivery is not None, "start the campaign before the workers"
        yield delivery.subscriber
        helpers.withdraw(delivery.subscriber, audience.purpose)


def withdraw_a_queued(campaign: Campaign, audience: helpers.Audience) -> Subscriber:
    """Withdraw the consent of a recipient still waiting (the last one due), during the fault.

    The delivery row stays locked until the withdrawal commits, and workers claim with SKIP
    LOCKED: no worker can check this recipient's consent before the withdrawal is in.
    """
    with transaction.atomic():
        delivery = (
            Delivery.objects.filter(campaign=campaign, status=Delivery.Status.QUEUED)
            .order_by(F("retry_after").asc(nulls_first=True), "-id")
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("subscriber")
            .first()
        )
        assert delivery is not None, "the campaign finished before a withdrawal during the fault"
        helpers.withdraw(delivery.subscriber, audience.purpose)
    return delivery.subscriber


def wait_until_finished(
    campaign: Campaign, *, log: Callable[[], str], timeout: float = 40.0, sweep: bool = True
) -> Campaign:
    """Wait for the campaign to leave "sending". With ``sweep``, act as the scheduler does
    (``keep_campaigns_moving``) once a second; a sweep that cannot reach the broker is skipped."""
    last_sweep = 0.0

    def finished() -> bool:
        nonlocal last_sweep
        campaign.refresh_from_db()
        if campaign.status not in (Campaign.Status.SENDING, Campaign.Status.SCHEDULED):
            return True
        if sweep and time.monotonic() - last_sweep >= 1.0:
            last_sweep = time.monotonic()
            # The broker may be what is down; the scheduler would simply try again too.
            with contextlib.suppress(Exception):
                tasks.keep_campaigns_moving()
        return False

    helpers.wait_until(finished, timeout=timeout, what=f"campaign {campaign.pk} to finish", log=log)
    return campaign


def check(
    *,
    fault: str,
    campaign: Campaign,
    audience: helpers.Audience,
    received: Iterable[str],
    batch: int,
    withdrawn: Iterable[Subscriber] = (),
    refused: Iterable[str] = (),
    audit: Iterable[str] = (),
) -> Row:
    """Record ``fault``'s row, then assert the five guarantees. ``received``: one address per
    copy that arrived; ``refused``: addresses the provider refuses for good; ``audit``: the
    actions expected besides one start and one finish (e.g. an automatic pause, a resume)."""
    campaign.refresh_from_db()
    copies = Counter(address.lower() for address in received)
    left = {s.email or "" for s in withdrawn}
    refused = {a.lower() for a in refused}
    due = audience.eligible_emails - left - refused
    row = Row(
        fault=fault,
        recipients=len(audience.eligible),
        sent=len(set(copies) & audience.eligible_emails),
        duplicates=sum(n - 1 for n in copies.values()),
        lost=len(due - set(copies)),
    )
    ROWS.append(row)

    # 1. finished
    assert campaign.status == Campaign.Status.SENT, (campaign.status, campaign.paused_reason)
    # 2. every eligible recipient sent to
    assert due <= set(copies), f"never sent: {sorted(due - set(copies))}"
    # 3. re-sends within the batch in flight
    assert row.duplicates <= batch, copies
    # 5. nobody withdrawn, unconfirmed or suppressed
    assert not (left | audience.excluded_emails) & set(copies), copies
    # 4. no record lost: deliveries …
    deliveries = dict(Delivery.objects.filter(campaign=campaign).values_list("subscriber__email", "status"))
    assert len(deliveries) == campaign.recipients_count
    assert set(deliveries) <= audience.eligible_emails
    assert audience.eligible_emails - left <= set(deliveries)
    for address, status in deliveries.items():
        expected = (
            Delivery.Status.SKIPPED
            if address in left
            else Delivery.Status.FAILED
            if address in refused
            else Delivery.Status.SENT
        )
        assert status == expected, (address, status)
    by_status = Counter(deliveries.values())
    counters = (campaign.sent_count, campaign.failed_count, campaign.skipped_count)
    assert counters == (
        by_status[Delivery.Status.SENT],
        by_status[Delivery.Status.FAILED],
        by_status[Delivery.Status.SKIPPED],
    )
    # … the consent ledger …
    call_command("verify_ledger")
    for subscriber in [*withdrawn, audience.withdrawn]:
        state = ConsentState.objects.get(
            subscriber=subscriber, purpose=audience.purpose, channel=Channel.EMAIL
        )
        assert state.status == ConsentState.Status.WITHDRAWN
        assert ConsentEvent.objects.filter(
            subscriber=subscriber, purpose=audience.purpose, kind=ConsentEvent.Kind.WITHDRAWN
        ).exists()
    # … and the audit trail.
    actions = Counter(CampaignAction.objects.filter(campaign=campaign).values_list("action", flat=True))
    expected_actions = Counter([CampaignAction.Action.SEND, CampaignAction.Action.FINISH, *audit])
    assert {a: actions[a] for a in expected_actions} == dict(expected_actions), actions
    return row
