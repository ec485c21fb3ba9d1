"""Deliverability guardrails: a sending campaign pauses itself when too many complain or bounce.

Gmail and Yahoo expect spam complaints to stay below 0.1% (COMPLIANCE.md); a list that
bounces a lot is a list nobody asked to be on. Once a campaign has sent at least
``GUARDRAIL_MIN_SENT`` messages, reaching ``GUARDRAIL_COMPLAINT_RATE`` complaints or
``GUARDRAIL_BOUNCE_RATE`` bounces per message sent pauses it (``services.campaign_pause``)
with the reason in plain words, and the Marketers group and ``ADMINS`` are emailed.

Rates are the campaign's counters (``complained_count``, ``bounced_count`` over
``sent_count``): no COUNT over events. Checked when a bounce or complaint is processed
and by dispatch between batches. After staff resume, the same numbers do not pause the
campaign again; one more complaint (or bounce) does.

Plain Python: no Celery here (the notice is queued on commit), no request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from marketing import services
from marketing.models import Campaign, CampaignAction

logger = logging.getLogger(__name__)

NOTIFY_GROUP = "Marketers"


@dataclass(frozen=True)
class Breach:
    kind: str  # "complaints" or "bounces"
    count: int
    sent: int
    limit: float

    @property
    def rate(self) -> float:
        return self.count / self.sent

    @property
    def reason(self) -> str:
        if self.kind == "complaints":
            return (
                f"Paused automatically: {self.count} spam complaint{'s' if self.count > 1 else ''} "
                f"from {self.sent} messages sent "
                f"({self.rate:.2%}), at or above the {self.limit:.2%} limit. Mailbox providers block "
                "senders above 0.1%. Check who got this and why, then resume or cancel."
            )
        return (
            f"Paused automatically: {self.count} of {self.sent} messages sent bounced ({self.rate:.1%}), "
            f"at or above the {self.limit:.1%} limit. Check where these addresses came from, "
            "then resume or cancel."
        )


def breach(campaign: Campaign) -> Breach | None:
    """The first limit the campaign's counters reach, complaints before bounces."""
    sent = campaign.sent_count
    if sent == 0 or sent < settings.GUARDRAIL_MIN_SENT:
        return None
    checks = (
        ("complaints", campaign.complained_count, settings.GUARDRAIL_COMPLAINT_RATE),
        ("bounces", campaign.bounced_count, settings.GUARDRAIL_BOUNCE_RATE),
    )
    for kind, count, limit in checks:
        if count and count / sent >= limit:
            return Breach(kind=kind, count=count, sent=sent, limit=limit)
    return None


def campaign_guard(*, campaign_id: int) -> bool:
    """Pause ``campaign_id`` if it is sending and over a limit. True if it was paused now."""
    campaign = Campaign.objects.get(pk=campaign_id)
    if campaign.status != Campaign.Status.SENDING:
        return False
    found = breach(campaign)
    if found is None or _seen_at_earlier_pause(campaign_id, found):
        return False
    with transaction.atomic():
        try:
            services.campaign_pause(
                campaign_id=campaign_id,
                actor=None,
                reason=found.reason,
                detail={"guardrail": found.kind, "count": found.count, "sent": found.sent},
            )
        except services.CampaignStateError:
            return False  # paused, cancelled or finished meanwhile
        _notify_on_commit(campaign_id)
    logger.warning("campaign %s paused by the %s guardrail", campaign_id, found.kind)
    return True


def _seen_at_earlier_pause(campaign_id: int, found: Breach) -> bool:
    """True if a guardrail pause already saw this many (staff resumed after it)."""
    pauses = CampaignAction.objects.filter(campaign_id=campaign_id, action=CampaignAction.Action.PAUSE)
    for detail in pauses.order_by("-at", "-id").values_list("detail", flat=True):
        if isinstance(detail, dict) and detail.get("guardrail") == found.kind:
            return int(detail.get("count", 0)) >= found.count
    return False


def _notify_on_commit(campaign_id: int) -> None:
    # Imported late: tasks import dispatch, which imports this module.
    from marketing import tasks

    transaction.on_commit(lambda: tasks.notify_campaign_paused.delay(campaign_id), robust=True)


def staff_to_notify() -> list[str]:
    """Addresses of active Marketers, then ``ADMINS``, each once."""
    users = get_user_model().objects.filter(is_active=True, groups__name=NOTIFY_GROUP).exclude(email="")
    # ADMINS: ("name", "address") pairs, or plain addresses as Django 6 has them.
    admins = [entry if isinstance(entry, str) else entry[1] for entry in settings.ADMINS]
    found = [*users.order_by("pk").values_list("email", flat=True), *admins]
    return list(dict.fromkeys(found))


def send_pause_notice(*, campaign_id: int) -> int:
    """Email staff why the campaign paused. Returns the number of recipients."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    to = staff_to_notify()
    if campaign is None or not to:
        return 0
    context = {
        "campaign": campaign,
        "reason": campaign.paused_reason,
        "url": settings.SITE_URL + reverse("admin:marketing_campaign_change", args=[campaign.pk]),
    }
    subject = " ".join(render_to_string("marketing/email/campaign_paused_subject.txt", context).split())
    message = EmailMessage(
        subject=subject,
        body=render_to_string("marketing/email/campaign_paused_body.txt", context),
        from_email=settings.SERVER_EMAIL,
        to=to,
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.send()
    return len(to)
