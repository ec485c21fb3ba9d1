"""Admin for campaigns: compose, preview, test, send, and watch the progress.

Every change goes through ``marketing.services`` (which writes the audit row); the admin
parses, checks permissions, calls one service and turns ``CampaignStateError`` into a
message. Buttons on the change page post to small views under ``<id>/actions/<name>/``.
The page reads the campaign's counters, never a COUNT over its deliveries.

Previews and test sends use a sample recipient (the staff user, or "Alex") whose links
point at ``example.invalid``: a sample is never mistaken for, or able to act as, a real
subscriber's link.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from anymail.exceptions import AnymailError
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from marketing import rendering, services
from marketing.models import Campaign, CampaignAction
from marketing.reports import views as report_views
from marketing.samples import (
    campaign_progress,
    html_part,
    sample_message,
    send_test,
    staff_recipient,
)
from subscribers import audience_counts
from subscribers import tasks as subscriber_tasks
from subscribers.admin import ReadOnlyMixin
from subscribers.models import Purpose

CONTENT_FIELDS = ("subject", "preheader", "layout", "body_format", "body", "first_name_fallback")
STATUS_FIELDS = (
    "status",
    "scheduled_at",
    "started_at",
    "finished_at",
    "paused_reason",
    "bounced_count",
    "complained_count",
    "created_by",
)


# --- Admin classes ----------------------------------------------------------------------


class CampaignActionInline(ReadOnlyMixin, admin.TabularInline):
    model = CampaignAction
    fields = ("at", "action", "actor_label", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "audit entry"
    verbose_name_plural = "Audit trail"


def mailing_purposes() -> QuerySet[Purpose]:
    """What a campaign may be for: kinds of mail by email, never consent to tracking."""
    return Purpose.objects.filter(offers_email=True, kind=Purpose.Kind.MAILING)


class PreviewForm(forms.ModelForm):
    """The composing fields as typed so far, for a live preview; nothing is saved from it."""

    class Meta:
        model = Campaign
        fields = ("purpose", *CONTENT_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
        self.fields["purpose"].queryset = mailing_purposes()  # type: ignore[attr-defined]


class ActionRefused(Exception):
    """A button's input could not be used; the message says why."""


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "purpose", "status", "scheduled_at", "progress", "created_by")
    list_filter = ("status", "purpose")
    list_select_related = ("purpose", "created_by")
    search_fields = ("name", "subject")
    readonly_fields = STATUS_FIELDS
    inlines = [CampaignActionInline]

    @admin.display(description="Sent / recipients")
    def progress(self, obj: Campaign) -> str:
        return f"{obj.sent_count}/{obj.recipients_count}"

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ("name", "purpose")}),
            ("Message", {"fields": CONTENT_FIELDS}),
        ]
        if obj is not None:
            fieldsets.append(("Status", {"fields": STATUS_FIELDS}))
        return fieldsets

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        # The trail is for reading; a POST of the form never carries (or saves) it.
        if obj is None or request.method == "POST":
            return []
        return super().get_inlines(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "purpose":
            kwargs["queryset"] = mailing_purposes()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Once sending starts the content is fixed; the buttons check the model permission.
        if obj is not None and not obj.is_editable:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the audit trail refers to every campaign; cancel instead

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        fields = {
            name: form.cleaned_data[name] for name in services.EDITABLE_FIELDS if name in form.cleaned_data
        }
        if change:
            saved = services.campaign_update(campaign_id=obj.pk, actor=request.user, **fields)
        else:
            saved = services.campaign_create(actor=request.user, **fields)
        # Point the admin's log entry and redirect at the row the service wrote.
        obj.pk, obj.status, obj.created_by_id = saved.pk, saved.status, saved.created_by_id
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # no many-to-many fields, and the inline is read-only

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.CampaignStateError as exc:
            # Sending started between loading the form and saving it.
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(request.path)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Campaign | None = None,
    ) -> HttpResponse:
        editable = obj is None or (obj.is_editable and self.has_change_permission(request, obj))
        context["live_preview"] = editable and context.get("adminform") is not None
        if obj is not None:
            when = obj.scheduled_at or timezone.now() + timedelta(hours=1)
            context.update(
                can_act=self.has_change_permission(request),
                progress=campaign_progress(obj),
                breakdown=self._breakdown(obj) if obj.is_editable else None,
                schedule_default=f"{timezone.localtime(when):%Y-%m-%dT%H:%M}",
                timezone_name=timezone.get_current_timezone_name(),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _breakdown(self, campaign: Campaign) -> audience_counts.Breakdown:
        breakdown, recount = audience_counts.breakdown_for_page(purpose_id=campaign.purpose_id)
        if recount:
            # The page shows the last count it has even when the broker is down.
            subscriber_tasks.queue_or_log(subscriber_tasks.count_audience, campaign.purpose_id)
        return breakdown

    # --- Extra views -------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.live_preview_view), name="marketing_campaign_live_preview"),
            path("<int:pk>/preview/", view(self.preview_view), name="marketing_campaign_preview"),
            path("<int:pk>/progress.json", view(self.progress_view), name="marketing_campaign_progress"),
            path("<int:pk>/actions/<slug:action>/", view(self.action_view), name="marketing_campaign_action"),
            path("<int:pk>/report/", view(self.report_view), name="marketing_campaign_report"),
            path(
                "<int:pk>/report/<slug:table>.csv",
                view(self.report_csv_view),
                name="marketing_campaign_report_csv",
            ),
            *super().get_urls(),
        ]

    def report_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return report_views.campaign_report_view(request, self.admin_site, pk)

    def report_csv_view(self, request: HttpRequest, pk: int, table: str) -> HttpResponseBase:
        return report_views.campaign_csv_view(request, pk, table)

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(Campaign.objects.select_related("purpose", "layout"), pk=pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        message = sample_message(rendering.prepare(campaign), staff_recipient(request.user))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview: {campaign}",
            "opts": self.model._meta,
            "original": campaign,
            "subject": message.subject,
            "html": html_part(message),
            "text": message.body,
            "recipient": message.to[0],
        }
        return TemplateResponse(request, "admin/marketing/campaign/preview.html", context)

    def live_preview_view(self, request: HttpRequest) -> HttpResponse:
        """Render the form's current content; writes nothing."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form = PreviewForm(request.POST)
        if not form.is_valid():
            return JsonResponse(
                {"error": "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in form.errors.items())}
            )
        values = dict(form.cleaned_data)
        if values.get("purpose") is None:
            return JsonResponse({"error": "Choose a purpose to see the preview."})
        values["body_format"] = values.get("body_format") or Campaign.BodyFormat.MARKDOWN
        message = sample_message(rendering.prepare(Campaign(**values)), staff_recipient(request.user))
        return JsonResponse(
            {"error": "", "subject": message.subject, "html": html_part(message), "text": message.body}
        )

    def progress_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(Campaign, pk=pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        return JsonResponse(campaign_progress(campaign))

    def action_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        handlers: dict[str, Callable[[HttpRequest, Campaign], str]] = {
            "test": self._send_test,
            "send": self._send_now,
            "schedule": self._schedule,
            "pause": self._pause,
            "resume": self._resume,
            "cancel": self._cancel,
        }
        handler = handlers.get(action)
        if handler is None:
            raise Http404(f"No campaign action {action!r}.")
        campaign = get_object_or_404(Campaign.objects.select_related("purpose", "layout"), pk=pk)
        try:
            done = handler(request, campaign)
        except (services.CampaignStateError, ActionRefused) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:marketing_campaign_change", args=[campaign.pk]))

    def _send_test(self, request: HttpRequest, campaign: Campaign) -> str:
        to = getattr(request.user, "email", "")
        if not to:
            raise ActionRefused("Your staff account has no email address: add one to receive tests.")
        try:
            send_test(campaign=campaign, to=to, name=staff_recipient(request.user).name, actor=request.user)
        except (AnymailError, smtplib.SMTPException, OSError) as exc:
            raise ActionRefused(f"The test could not be sent: {type(exc).__name__}: {exc}") from exc
        return f"Test sent to {to}."

    def _send_now(self, request: HttpRequest, campaign: Campaign) -> str:
        started = services.campaign_send(campaign_id=campaign.pk, actor=request.user)
        return f"Sending started to {started.recipients_count} eligible recipients."

    def _schedule(self, request: HttpRequest, campaign: Campaign) -> str:
        at = parse_datetime(request.POST.get("at", "").strip())
        if at is None:
            raise ActionRefused("Give a date and time to schedule the campaign.")
        if timezone.is_naive(at):
            at = timezone.make_aware(at)
        if at <= timezone.now():
            raise ActionRefused("That time has passed: choose a later one, or use Send now.")
        services.campaign_schedule(campaign_id=campaign.pk, actor=request.user, at=at)
        return f"Scheduled for {timezone.localtime(at):%Y-%m-%d %H:%M %Z}."

    def _pause(self, request: HttpRequest, campaign: Campaign) -> str:
        reason = request.POST.get("reason", "").strip()
        services.campaign_pause(campaign_id=campaign.pk, actor=request.user, reason=reason)
        return "Paused. Messages already handed to the provider are not recalled."

    def _resume(self, request: HttpRequest, campaign: Campaign) -> str:
        services.campaign_resume(campaign_id=campaign.pk, actor=request.user)
        return "Resumed."

    def _cancel(self, request: HttpRequest, campaign: Campaign) -> str:
        cancelled = services.campaign_cancel(campaign_id=campaign.pk, actor=request.user)
        return f"Cancelled; {cancelled.queued_count} queued messages will not be sent."


# Registered by importing: the records staff look at but never change.
from marketing import records_admin  # noqa: E402, F401
