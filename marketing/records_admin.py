"""The admin's read-only records of sending: deliveries, campaign actions, provider events,
and the layouts campaigns are framed in. Registered when ``marketing.admin`` imports this."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin_paginator import EstimatedCountPaginator
from marketing.models import CampaignAction, Delivery, DeliveryEvent, Layout
from subscribers.admin import ReadOnlyMixin
from subscribers.services import address_hash


@admin.register(Layout)
class LayoutAdmin(admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("campaign", "subscriber", "status", "attempts", "sent_at", "provider_message_id", "error")
    list_filter = ("status", "campaign")
    list_select_related = ("campaign", "subscriber")
    search_fields = ("=provider_message_id",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # COUNT(*) over a million deliveries on every page is slow
    list_per_page = 50
    actions = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).order_by("-id")


@admin.register(CampaignAction)
class CampaignActionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("at", "campaign", "action", "actor_label")
    list_filter = ("action",)
    list_select_related = ("campaign",)
    date_hierarchy = "at"
    actions = None


class RecentProviderFilter(admin.SimpleListFilter):
    """The providers among the latest events: Django's own filter on ``esp_name`` runs a
    DISTINCT over every event (0.3 s at a million) to list the one or two there are."""

    title = "provider"
    parameter_name = "esp_name"
    RECENT = 1000

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        latest = DeliveryEvent.objects.order_by("-id").values_list("esp_name", flat=True)[: self.RECENT]
        return [(name, name) for name in sorted(set(latest))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(esp_name=value) if value else queryset


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """What providers reported, matched or not. Search by address (hashed), message or event id."""

    list_display = (
        "received_at",
        "esp_name",
        "event_type",
        "bounce",
        "reject_reason",
        "campaign",
        "matched",
        "outcome",
    )
    list_filter = ("event_type", "bounce", "matched", RecentProviderFilter)
    list_select_related = ("campaign",)
    search_fields = ("=provider_message_id", "=event_id")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    actions = None
    readonly_fields = (
        "esp_name",
        "event_type",
        "bounce",
        "reject_reason",
        "description",
        "mta_response",
        "occurred_at",
        "received_at",
        "event_id",
        "provider_message_id",
        "recipient_domain",
        "recipient_hash",
        "metadata",
        "matched",
        "delivery",
        "campaign",
        "processed_at",
        "outcome",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeliveryEvent]:
        return super().get_queryset(request).order_by("-id")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        # Addresses are kept only as keyed hashes: hash what was typed.
        if "@" in search_term:
            return queryset.filter(recipient_hash=address_hash(search_term)), False
        return super().get_search_results(request, queryset, search_term)
