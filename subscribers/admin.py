"""Admin for subscribers, purposes, consent texts and the (read-only) ledger.

Nobody, superusers included, can change or delete a ledger event here: every
permission hook says no. Consent texts are published, never edited: saving the change
form publishes a new version through ``services.consent_text_publish``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.admin_paginator import EstimatedCountPaginator
from subscribers import selectors, services, suppression_admin  # noqa: F401 (registers it)
from subscribers.data_rights_admin import DataRightsAdminMixin
from subscribers.models import (
    ConsentEvent,
    ConsentEvidence,
    ConsentState,
    ConsentText,
    Purpose,
    Subscriber,
)

PROOF_PERMISSION = "subscribers.view_consent_proof"
EVIDENCE_PERMISSION = "subscribers.view_consent_evidence"


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "offers_email", "offers_postal", "is_active", "position", "current_text")
    list_editable = ("position",)
    prepopulated_fields = {"slug": ("name",)}

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # purposes are referenced by the ledger forever; deactivate instead

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # People agreed under this name and description (shown with the text, outside its
        # versioned digest) and proofs name the slug: once a text is published they stay.
        # A different offer is a new purpose; this one can be deactivated.
        if obj is not None and obj.texts.exists():
            return ("name", "slug", "description")
        return ()

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> dict[str, Sequence[str]]:
        return {} if obj is not None and obj.texts.exists() else dict(self.prepopulated_fields)

    @admin.display(description="Current consent text")
    def current_text(self, obj: Purpose) -> str:
        text = obj.texts.order_by("-version").first()
        return f"v{text.version} ({text.language})" if text else "none yet: not offered on signup"


@admin.register(ConsentText)
class ConsentTextAdmin(admin.ModelAdmin):
    list_display = ("purpose", "language", "version", "statement", "published_at")
    list_filter = ("purpose", "language")
    fields = ("purpose", "language", *ConsentText.CONTENT_FIELDS)
    readonly_fields = ("version", "published_at", "digest")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # Purpose and language name the series a new version belongs to.
        return ("purpose", "language") if obj else ()

    def save_model(self, request: HttpRequest, obj: ConsentText, form: Any, change: bool) -> None:
        # The form's edits only ever live in memory: the published row is never written.
        content = {name: form.cleaned_data[name] for name in ConsentText.CONTENT_FIELDS}
        published = services.consent_text_publish(
            purpose=obj.purpose, language=obj.language, content=content, published_by_id=request.user.pk
        )
        # Point the admin's log entry and redirect at the new version.
        obj.pk, obj.version, obj.digest = published.pk, published.version, published.digest
        obj.published_at = published.published_at
        obj._state.adding = False

    def response_change(self, request: HttpRequest, obj: ConsentText) -> HttpResponse:
        self.message_user(
            request,
            f"Published version {obj.version}. Earlier versions stay as they were: "
            "the ledger points at the exact text each person saw.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:subscribers_consenttext_change", args=[obj.pk]))


class ConsentStateInline(ReadOnlyMixin, admin.TabularInline):
    model = ConsentState
    fields = ("purpose", "channel", "status", "consent_text", "requested_at", "confirmed_at", "withdrawn_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentState]:
        # A text's name includes its purpose's: without these, two queries a row.
        return super().get_queryset(request).select_related("purpose", "consent_text__purpose")


class ConsentEventInline(ReadOnlyMixin, admin.TabularInline):
    model = ConsentEvent
    fields = (
        "seq",
        "occurred_at",
        "kind",
        "purpose",
        "channel",
        "consent_text",
        "source",
        "actor_display",
        "evidence_summary",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-seq",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentEvent]:
        return super().get_queryset(request).select_related("purpose", "consent_text__purpose", "evidence")

    @admin.display(description="By")
    def actor_display(self, obj: ConsentEvent) -> str:
        return obj.actor_label or obj.get_actor_display()

    @admin.display(description="Evidence")
    def evidence_summary(self, obj: ConsentEvent) -> str:
        return _evidence_summary(obj)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return _without_evidence(super().get_fields(request, obj), request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return _without_evidence(super().get_readonly_fields(request, obj), request)


def _without_evidence(fields: Any, request: HttpRequest) -> Any:
    """Evidence (IP addresses, user agents) is personal data: Compliance only."""
    if request.user.has_perm(EVIDENCE_PERMISSION):
        return fields
    return tuple(f for f in fields if f not in ("evidence_summary", "evidence_view"))


def _evidence_summary(event: ConsentEvent) -> str:
    evidence = getattr(event, "evidence", None)
    if evidence is None:
        return "missing"
    if evidence.erased_at:
        return f"erased {evidence.erased_at:%Y-%m-%d}"
    return f"{evidence.ip_address or 'no IP'} · {evidence.user_agent[:80]}"


@admin.register(Subscriber)
class SubscriberAdmin(DataRightsAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("email", "name", "created_at", "active_consents")
    search_fields = ("email",)  # shows the box; get_search_results decides what matches
    search_help_text = "A whole email address (any case), a subscriber number, or an address hash."
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is slow
    list_per_page = 50
    fields = (
        "email",
        "name",
        "language",
        "postal_address_display",
        "created_at",
        "ledger_seq",
        "proof_links",
    )
    readonly_fields = fields
    inlines = [ConsentStateInline, ConsentEventInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscriber]:
        return super().get_queryset(request).prefetch_related("consents__purpose")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Subscriber], search_term: str
    ) -> tuple[QuerySet[Subscriber], bool]:
        # Each is one index lookup. "Contains" (the admin's default) reads every row: at a
        # million subscribers, a second or more for each search and its count.
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            return queryset.filter(pk__in=selectors.subscribers_with_address(term).values("pk")), False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return queryset.filter(email_hash=term.lower()), False

    @admin.display(description="Active consents")
    def active_consents(self, obj: Subscriber) -> str:
        active = [c for c in obj.consents.all() if c.status == ConsentState.Status.ACTIVE]
        return ", ".join(f"{c.purpose.name} ({c.get_channel_display()})" for c in active) or "none"

    @admin.display(description="Postal address")
    def postal_address_display(self, obj: Subscriber) -> str:
        return obj.postal_address or "—"

    @admin.display(description="Proof of consent")
    def proof_links(self, obj: Subscriber) -> str:
        return format_html(
            '<a href="{}">View</a> · <a href="{}">Download JSON</a>',
            reverse("admin:subscribers_subscriber_proof", args=[obj.pk]),
            reverse("admin:subscribers_subscriber_proof_json", args=[obj.pk]),
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        if request.user.has_perm(PROOF_PERMISSION):
            return fields
        return tuple(f for f in fields if f != "proof_links")

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/proof/", view(self.proof_view), name="subscribers_subscriber_proof"),
            path("<int:pk>/proof.json", view(self.proof_json_view), name="subscribers_subscriber_proof_json"),
            *super().get_urls(),
        ]

    def _proof(self, request: HttpRequest, pk: int, *, what: str) -> tuple[Subscriber, dict[str, Any]]:
        if not request.user.has_perm(PROOF_PERMISSION):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=pk)
        proof = selectors.consent_proof(subscriber=subscriber)
        services.subscriber_access_record(subscriber=subscriber, staff_user=request.user, what=what)
        return subscriber, proof

    def proof_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        subscriber, proof = self._proof(request, pk, what="Viewed the proof of consent.")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Proof of consent: {subscriber}",
            "subscriber": subscriber,
            "proof": proof,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/subscribers/proof.html", context)

    def proof_json_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        subscriber, proof = self._proof(request, pk, what="Downloaded the proof of consent (JSON).")
        response = JsonResponse(proof, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = f'attachment; filename="consent-proof-{subscriber.pk}.json"'
        return response


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "subscriber", "seq", "kind", "purpose", "channel", "source", "actor")
    # A date filter, not date_hierarchy: its year/month links need a DISTINCT over every
    # event's date (2 s at eight million events); "past 7 days" and the like need nothing.
    list_filter = ("kind", "source", "channel", "purpose", "occurred_at")
    list_select_related = ("subscriber", "purpose")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    readonly_fields = (
        "subscriber",
        "seq",
        "purpose",
        "channel",
        "kind",
        "consent_text",
        "request",
        "occurred_at",
        "source",
        "actor",
        "actor_user_id",
        "actor_label",
        "evidence_view",
        "evidence_digest",
        "prev_hash",
        "hash",
    )
    fields = readonly_fields
    actions = None

    @admin.display(description="Evidence")
    def evidence_view(self, obj: ConsentEvent) -> str:
        evidence = getattr(obj, "evidence", None)
        if evidence is None or evidence.erased_at:
            return _evidence_summary(obj)
        submitted = json.dumps(evidence.submitted, ensure_ascii=False)
        return format_html(
            "{}<br>page: {}<br>submitted: <code>{}</code>",
            _evidence_summary(obj),
            evidence.page_url,
            submitted,
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return _without_evidence(super().get_fields(request, obj), request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return _without_evidence(super().get_readonly_fields(request, obj), request)


@admin.register(ConsentEvidence)
class ConsentEvidenceAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Listed only for Compliance; the evidence is personal data."""

    list_display = ("event", "ip_address", "erased_at")
    list_select_related = ("event",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(EVIDENCE_PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(EVIDENCE_PERMISSION)
