"""Every row hostile input could change, to compare before and after a request."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from marketing.models import CampaignAction, Delivery, DeliveryEvent
from subscribers.models import (
    ConfirmationRequest,
    ConsentEvent,
    ConsentEvidence,
    ConsentState,
    EmailChangeRequest,
    Subscriber,
    Suppression,
)

WATCHED: tuple[type[Model], ...] = (
    Subscriber,
    ConsentEvent,
    ConsentEvidence,
    ConsentState,
    ConfirmationRequest,
    EmailChangeRequest,
    Suppression,
    Delivery,
    DeliveryEvent,
    CampaignAction,
)


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every field of every watched row, in primary-key order."""
    return {
        model.__name__: [
            tuple(row) for row in model._default_manager.order_by("pk").values_list(*_columns(model))
        ]
        for model in WATCHED
    }


def _columns(model: type[Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def changed(before: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    """The names of the watched tables whose rows differ from ``before``."""
    after = snapshot()
    return [name for name in before if before[name] != after[name]]
