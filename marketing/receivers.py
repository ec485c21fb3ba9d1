"""The one receiver of anymail's ``tracking`` signal (``anymail/webhooks/base.py``).

It normalises each event (``marketing.events``) and hands it to the service that stores
it once and queues its processing; nothing else happens inside the webhook request.
Connected in ``MarketingConfig.ready``.
"""

from __future__ import annotations

from typing import Any

from marketing import events, provider_events


def tracking_received(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    provider_events.delivery_record_event(event=events.normalise(event, esp_name=esp_name))
