"""A whole batch in one provider API call, each recipient's copy personalised by the provider
(``batching`` builds the message and reads the answer; ``batching.supported`` says where).

The caller records what ``send_as_one`` settled (``send_outcomes``); nothing here touches
the database. Plain Python: no Celery, no request.
"""

from __future__ import annotations

import logging

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

from marketing import batch_backends, batching, rendering, tracking
from marketing.models import Delivery
from marketing.send_outcomes import Outcomes, Retries, refusal, retry_delay, short

logger = logging.getLogger(__name__)


def send_as_one(
    *,
    campaign_id: int,
    prepared: rendering.PreparedCampaign,
    to_send: list[tuple[int, int, rendering.Recipient]],
    outcomes: Outcomes,
    retry: Retries,
) -> None:
    """Send ``to_send`` (delivery id, attempts, recipient) all the ``prepared`` copy."""
    recipients = {delivery_id: recipient for delivery_id, _, recipient in to_send}
    message = batching.build_message(prepared, recipients, connection=batch_backends.connection())
    tracking.disable_provider_tracking(message)

    try:
        message.send()
    except AnymailRecipientsRefused as exc:
        for delivery_id in recipients:
            outcomes[delivery_id] = (Delivery.Status.FAILED, "", refusal(exc))
    except (AnymailAPIError, OSError) as exc:
        if len(to_send) > 1 and _refuses_the_call(exc):
            # Mailgun answers 400 for the whole call when one address is bad: halve until it is alone.
            half = len(to_send) // 2
            for part in (to_send[:half], to_send[half:]):
                send_as_one(
                    campaign_id=campaign_id, prepared=prepared, to_send=part, outcomes=outcomes, retry=retry
                )
            return
        # One call for everyone: a temporary failure puts the whole batch back.
        delay = retry_delay(exc, max(attempts for _, attempts, _ in to_send))
        for delivery_id, attempts, _ in to_send:
            if delay is None:
                outcomes[delivery_id] = (Delivery.Status.FAILED, "", refusal(exc))
            else:
                retry[delivery_id] = (attempts, delay)
        if delay is not None:
            logger.warning("campaign %s: sending paused for %.0fs: %s", campaign_id, delay, short(exc))
    else:
        for delivery_id, (accepted, provider_id, error) in batching.recipient_outcomes(
            message, recipients
        ).items():
            status = Delivery.Status.SENT if accepted else Delivery.Status.FAILED
            outcomes[delivery_id] = (status, provider_id, error)


def _refuses_the_call(exc: Exception) -> bool:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status in (400, 422)
