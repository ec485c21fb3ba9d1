"""Data rights in the subscriber admin: download a subscriber's data, erase it on request,
and unsubscribe the person from everything when they ask by email, letter or phone.

All are Compliance's: the download holds IP addresses and user agents, so it needs
``subscribers.view_consent_evidence``; erasing needs ``subscribers.erase_subscriber``
(migration 0007); unsubscribing needs ``subscribers.unsubscribe_on_request`` (0016).
Marketers see none of the links and get 403 at the URLs. The erasure goes through
``services.subscriber_erase`` and the unsubscribe through
``services.subscriber_unsubscribe_on_request``, with the staff user as the actor of the
ledger events, plus the request reference they type (a ticket number, say). Mixed into
``SubscriberAdmin`` by ``subscribers.admin``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from subscribers import exports, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, Subscriber

ERASE_PERMISSION = "subscribers.erase_subscriber"
EXPORT_PERMISSION = "subscribers.view_consent_evidence"
UNSUBSCRIBE_PERMISSION = "subscribers.unsubscribe_on_request"


class EraseForm(forms.Form):
    request_reference = forms.CharField(
        required=False,
        max_length=200,
        label="Request reference",
        help_text="Optional: where the request came from, e.g. a ticket number. Kept in the ledger, "
        "so never the person's address or name.",
    )


class UnsubscribeForm(forms.Form):
    request = forms.CharField(
        max_length=500,
        label="How the request arrived",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required: the route and its reference, e.g. “email to privacy@, ticket 4711” or "
        "“letter dated 2 December”. Kept in the ledger with your name.",
        error_messages={
            "required": "Say how the request arrived (email, letter, phone) and its reference: "
            "the ledger keeps it as the reason for the withdrawal."
        },
    )
    suppress = forms.BooleanField(
        required=False,
        label="Also never email this address again",
        help_text="Suppresses the address, so no mail reaches it even if consent is given again, "
        "until Compliance lifts the suppression.",
    )


class DataRightsAdminMixin:
    """Adds the download and erase views, and their buttons on the change page, to a ModelAdmin."""

    admin_site: Any
    model: type[Subscriber]

    @staticmethod
    def _may(request: HttpRequest, permission: str) -> bool:
        return bool(request.user.has_perm(permission))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        # The buttons in the page's object tools (templates/admin/subscribers/subscriber/change_form.html).
        context = {
            "can_export_data": self._may(request, EXPORT_PERMISSION),
            "can_erase": self._may(request, ERASE_PERMISSION),
            "can_unsubscribe": self._may(request, UNSUBSCRIBE_PERMISSION),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)  # type: ignore[misc]

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/erase/", view(self.erase_view), name="subscribers_subscriber_erase"),
            path(
                "<int:pk>/unsubscribe/",
                view(self.unsubscribe_view),
                name="subscribers_subscriber_unsubscribe",
            ),
            path("<int:pk>/data.json", view(self.data_json_view), name="subscribers_subscriber_data_json"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def data_json_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self._may(request, EXPORT_PERMISSION):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=pk)
        data = exports.subscriber_export(subscriber=subscriber)
        services.subscriber_access_record(
            subscriber=subscriber, staff_user=request.user, what="Downloaded the subscriber's data (JSON)."
        )
        response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = f'attachment; filename="subscriber-{subscriber.pk}-data.json"'
        return response

    def erase_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self._may(request, ERASE_PERMISSION):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=pk)
        change_url = reverse("admin:subscribers_subscriber_change", args=[pk])
        form = EraseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            reference = form.cleaned_data["request_reference"].strip()
            user = request.user
            evidence = Evidence(
                source=ConsentEvent.Source.ADMIN,
                actor=ConsentEvent.Actor.STAFF,
                actor_user_id=user.pk,
                actor_label=user.get_username(),
                submitted={"request_reference": reference} if reference else {},
            )
            try:
                services.subscriber_erase(subscriber=subscriber, evidence=evidence)
            except services.ErasureError as exc:
                self.message_user(request, str(exc), messages.WARNING)  # type: ignore[attr-defined]
            else:
                subscriber.refresh_from_db()
                self.log_change(request, subscriber, "Erased personal data on request.")  # type: ignore[attr-defined]
                self.message_user(  # type: ignore[attr-defined]
                    request,
                    "Erased. The address is suppressed, and the ledger keeps an 'erased' event in your name.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(change_url)
        return self._page(
            request, subscriber, "erase", f"Erase the personal data of subscriber #{subscriber.pk}", form=form
        )

    def unsubscribe_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self._may(request, UNSUBSCRIBE_PERMISSION):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=pk)
        change_url = reverse("admin:subscribers_subscriber_change", args=[pk])
        form = UnsubscribeForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                outcome = services.subscriber_unsubscribe_on_request(
                    subscriber=subscriber,
                    staff_user=request.user,
                    request_note=form.cleaned_data["request"],
                    suppress=form.cleaned_data["suppress"],
                )
            except services.OnRequestError as exc:
                self.message_user(request, str(exc), messages.WARNING)  # type: ignore[attr-defined]
            else:
                done = f"Withdrew {len(outcome.withdrawn)} consent(s) in your name"
                if outcome.suppression is not None:
                    done += " and suppressed the address"
                self.message_user(request, f"{done}.", messages.SUCCESS)  # type: ignore[attr-defined]
            return HttpResponseRedirect(change_url)
        return self._page(
            request,
            subscriber,
            "unsubscribe",
            f"Unsubscribe subscriber #{subscriber.pk} from everything",
            form=form,
            open_consents=selectors.open_consents(subscriber=subscriber),
        )

    def _page(
        self, request: HttpRequest, subscriber: Subscriber, name: str, title: str, **extra: Any
    ) -> HttpResponse:
        """One of the subscriber's admin action pages (``admin/subscribers/subscriber/<name>.html``)."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "original": subscriber,
            "subscriber": subscriber,
            "change_url": reverse("admin:subscribers_subscriber_change", args=[subscriber.pk]),
            **extra,
        }
        return TemplateResponse(request, f"admin/subscribers/subscriber/{name}.html", context)
