"""Data rights in the subscriber admin: download a subscriber's data, and erase it on request.

Both are Compliance's: the download holds IP addresses and user agents, so it needs
``subscribers.view_consent_evidence``; erasing needs ``subscribers.erase_subscriber``
(migration 0007). Marketers see neither link and get 403 at the URLs. The erasure goes
through ``services.subscriber_erase`` with the staff user as the actor of the ledger
event, plus the request reference they type (a ticket number, say). Mixed into
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

from subscribers import exports, services
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, Subscriber

ERASE_PERMISSION = "subscribers.erase_subscriber"
EXPORT_PERMISSION = "subscribers.view_consent_evidence"


class EraseForm(forms.Form):
    request_reference = forms.CharField(
        required=False,
        max_length=200,
        label="Request reference",
        help_text="Optional: where the request came from, e.g. a ticket number. Kept in the ledger, "
        "so never the person's address or name.",
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
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)  # type: ignore[misc]

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/erase/", view(self.erase_view), name="subscribers_subscriber_erase"),
            path("<int:pk>/data.json", view(self.data_json_view), name="subscribers_subscriber_data_json"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def data_json_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self._may(request, EXPORT_PERMISSION):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=pk)
        data = exports.subscriber_export(subscriber=subscriber)
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
        context = {
            **self.admin_site.each_context(request),
            "title": f"Erase the personal data of subscriber #{subscriber.pk}",
            "opts": self.model._meta,
            "original": subscriber,
            "subscriber": subscriber,
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/subscribers/subscriber/erase.html", context)
