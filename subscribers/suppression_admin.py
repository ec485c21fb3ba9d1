"""Admin for the suppression list: why each address is suppressed, and lifting it.

Everyone with ``view_suppression`` (Marketers, Compliance) sees the reason, the detail the
provider gave, when, and which subscriber (if any) holds the address now. Lifting needs
``subscribers.lift_suppression`` (Compliance) and goes through
``services.suppression_lift``, which records who, when and why. Nobody adds, edits or
deletes rows here. Registered by ``subscribers.admin``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.admin_paginator import EstimatedCountPaginator
from subscribers import services
from subscribers.models import Subscriber, Suppression

LIFT_PERMISSION = "subscribers.lift_suppression"


class InForceFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "in_force"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "In force"), ("no", "Lifted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(lifted_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(lifted_at__isnull=False)
        return queryset


class LiftForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Why mail may reach this address again, e.g. the person confirmed a new signup "
        "and the provider's own suppression was removed.",
    )


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "reason", "status", "holder", "detail_short", "lifted_by_label")
    # A date filter rather than date_hierarchy, whose links need a DISTINCT over every row.
    list_filter = ("reason", InForceFilter, "created_at")
    search_fields = ("=email_hash",)
    search_help_text = "An email address (matched by its hash) or a hash."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    actions = None
    fields = (
        "reason",
        "detail",
        "created_at",
        "holder",
        "email_hash",
        "status",
        "lifted_at",
        "lifted_by_label",
        "lift_note",
        "lift_link",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Suppression]:
        holders = Subscriber.objects.filter(email_hash=OuterRef("email_hash"), email__isnull=False)
        holder_id = Subquery(holders.order_by("pk").values("pk")[:1])
        return super().get_queryset(request).annotate(holder_id=holder_id).order_by("-created_at", "-id")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        if "@" in search_term:
            return queryset.filter(email_hash=services.address_hash(search_term)), False
        return super().get_search_results(request, queryset, search_term)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        if request.user.has_perm(LIFT_PERMISSION):
            return fields
        return tuple(f for f in fields if f != "lift_link")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    @admin.display(description="Status")
    def status(self, obj: Suppression) -> str:
        return "in force" if obj.in_force else f"lifted {obj.lifted_at:%Y-%m-%d %H:%M}"

    @admin.display(description="Subscriber with this address")
    def holder(self, obj: Suppression) -> str:
        holder_id = getattr(obj, "holder_id", None)
        if holder_id is None:
            return "none (erased, changed, or never a subscriber)"
        url = reverse("admin:subscribers_subscriber_change", args=[holder_id])
        return format_html('<a href="{}">subscriber #{}</a>', url, holder_id)

    @admin.display(description="Detail")
    def detail_short(self, obj: Suppression) -> str:
        return obj.detail if len(obj.detail) <= 80 else obj.detail[:79] + "…"

    @admin.display(description="Lift")
    def lift_link(self, obj: Suppression) -> str:
        if not obj.in_force:
            return "—"
        url = reverse("admin:subscribers_suppression_lift", args=[obj.pk])
        return format_html('<a class="button" href="{}">Lift this suppression…</a>', url)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/lift/", view(self.lift_view), name="subscribers_suppression_lift"),
            *super().get_urls(),
        ]

    def lift_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(LIFT_PERMISSION):
            raise PermissionDenied
        suppression = get_object_or_404(self.get_queryset(request), pk=pk)
        change_url = reverse("admin:subscribers_suppression_change", args=[pk])
        form = LiftForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.suppression_lift(
                    suppression_id=pk, staff_user=request.user, note=form.cleaned_data["note"]
                )
            except services.SuppressionError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request,
                    "Lifted. The provider may keep its own suppression of this address: "
                    "remove it there too, or mail to it is still dropped.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Lift a suppression",
            "opts": self.model._meta,
            "original": suppression,
            "suppression": suppression,
            "holder": self.holder(suppression),
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/subscribers/suppression/lift.html", context)
