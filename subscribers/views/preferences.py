"""The preference centre, and confirming a new address from the link sent to it.

No password: the signed preferences link in every email is the credential. The page has
one URL; each form on it names its ``action`` and each POST is one service call, then a
redirect back with a message (POST/redirect/GET). Invalid input re-renders the page with
the errors, status 400.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_ratelimit.core import is_ratelimited

from subscribers import links, selectors, services, tokens
from subscribers.emails import contact_email
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, ConsentState, EmailChangeRequest, Frequency, Subscriber
from subscribers.preference_forms import (
    ConsentSwitchForm,
    EmailChangeForm,
    FrequencyForm,
    PauseForm,
    ProfileForm,
    ResumeForm,
    UnsubscribeAllForm,
)
from subscribers.selectors import PurposePreferences
from subscribers.views.common import bad_link, evidence_from, switch_name

# Each request mails an address the link holder typed: keep that from becoming a way to
# flood someone else's inbox.
EMAIL_CHANGE_RATE = "5/h"

Rows = list[PurposePreferences]
_OPEN = (ConsentState.Status.ACTIVE, ConsentState.Status.PENDING)
Handler = Callable[[HttpRequest, Subscriber, str, Rows], HttpResponse]


@never_cache
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = selectors.linked_subscriber(links.read("preferences", token))
    if subscriber is None:
        return bad_link(request)
    rows = selectors.preference_centre(subscriber=subscriber)
    if request.method == "POST":
        handler = HANDLERS.get(request.POST.get("action", ""))
        if handler is None:
            return _page(request, subscriber, token, rows, problem=_("We didn't understand that request."))
        return handler(request, subscriber, token, rows)
    return _page(request, subscriber, token, rows)


def _consent(request: HttpRequest, subscriber: Subscriber, token: str, rows: Rows) -> HttpResponse:
    form = ConsentSwitchForm(request.POST, rows=rows)
    if not form.is_valid():
        return _page(request, subscriber, token, rows, bound=form)
    purpose, channel = form.purpose_obj, form.cleaned_data["channel"]
    what = switch_name(purpose, channel)
    evidence = _evidence(request, form)
    if form.cleaned_data["enabled"]:
        try:
            services.consent_opt_in(
                subscriber=subscriber,
                purpose=purpose,
                channel=channel,
                consent_text_id=form.cleaned_data["consent_text"],
                evidence=evidence,
            )
        except services.PreferenceError as exc:
            form.add_error(None, _problem_text(exc.reason, purpose=purpose.name))
            # Read again: the wording shown must be the one now in force.
            rows = selectors.preference_centre(subscriber=subscriber)
            return _page(request, subscriber, token, rows, bound=form)
        messages.success(request, _("%(what)s is on.") % {"what": what})
    else:
        services.consent_withdraw(subscriber=subscriber, purpose=purpose, channel=channel, evidence=evidence)
        messages.success(request, _("%(what)s is off.") % {"what": what})
    return _back(token)


def _frequency(request: HttpRequest, subscriber: Subscriber, token: str, rows: Rows) -> HttpResponse:
    row = _row(rows, request.POST.get("purpose"))
    form = FrequencyForm(request.POST, rows=rows, row=row)
    if not form.is_valid():
        return _page(request, subscriber, token, rows, bound=form)
    frequency = form.cleaned_data["frequency"]
    services.consent_frequency_set(
        subscriber=subscriber,
        purpose=form.purpose_obj,
        frequency=frequency,
        evidence=_evidence(request, form),
    )
    how = Frequency(frequency).label
    messages.success(request, _("%(purpose)s: %(how)s.") % {"purpose": form.purpose_obj.name, "how": how})
    return _back(token)


def _unsubscribe_all(request: HttpRequest, subscriber: Subscriber, token: str, rows: Rows) -> HttpResponse:
    form = UnsubscribeAllForm(request.POST)
    form.is_valid()
    if services.consents_withdraw_all(subscriber=subscriber, evidence=_evidence(request, form)):
        messages.success(
            request,
            _(
                "You're unsubscribed from everything: we won't send you anything, by email or by "
                "post. To get something again, switch it on below."
            ),
        )
    else:
        messages.info(request, _("Nothing was switched on: we send you nothing."))
    return _back(token)


def _pause(request: HttpRequest, subscriber: Subscriber, token: str, rows: Rows) -> HttpResponse:
    form = PauseForm(request.POST)
    if not form.is_valid():
        return _page(request, subscriber, token, rows, bound=form)
    services.subscriber_pause(
        subscriber=subscriber, months=form.cleaned_data["months"], evidence=_evidence(request, form)
    )
    subscriber.refresh_from_db(fields=["paused_until"])
    until = formats.date_format(timezone.localtime(cast(datetime, subscriber.paused_until)), "j F Y")
    messages.success(request, _("Paused: we won't send you anything until %(date)s.") % {"date": until})
    return _back(token)


def _resume(request: HttpRequest, subscriber: Subscriber, token: str, rows: Rows) -> HttpResponse:
    form = ResumeForm(request.POST)
    form.is_valid()
    if services.subscriber_resume(subscriber=subscriber, evidence=_evidence(request, form)):
        messages.success(request, _("The pause is over: you'll get what you've chosen again."))
    else:
        messages.info(request, _("Nothing was paused."))
    return _back(token)


def _profile(request: HttpRequest, subscriber: Subscriber, token: str, rows: Rows) -> HttpResponse:
    form = ProfileForm(request.POST, subscriber=subscriber)
    if not form.is_valid():
        return _page(request, subscriber, token, rows, bound=form)
    try:
        event = services.subscriber_profile_update(
            subscriber=subscriber,
            evidence=_evidence(request, form),
            **{name: form.cleaned_data[name] for name in ProfileForm.base_fields},
        )
    except services.PreferenceError:
        form.add_error(
            None, _("You get mail by post: keep a full address, or switch mail by post off first.")
        )
        return _page(request, subscriber, token, rows, bound=form)
    if event is None:
        messages.info(request, _("Your name and address are as they were: nothing changed."))
    else:
        messages.success(request, _("Your name and address are saved."))
    return _back(token)


def _email(request: HttpRequest, subscriber: Subscriber, token: str, rows: Rows) -> HttpResponse:
    form = EmailChangeForm(request.POST)
    if not form.is_valid():
        return _page(request, subscriber, token, rows, bound=form)
    limited = is_ratelimited(
        request,
        group="subscribers.email_change",
        key=lambda _group, _request: f"subscriber:{subscriber.pk}",
        rate=EMAIL_CHANGE_RATE,
        increment=True,
    )
    if limited:
        form.add_error(None, _("You've asked for several changes in a short time. Try again in an hour."))
        return _page(request, subscriber, token, rows, bound=form, status=429)
    new_email = form.cleaned_data["new_email"]
    try:
        services.email_change_request(
            subscriber=subscriber, new_email=new_email, evidence=_evidence(request, form)
        )
    except services.PreferenceError as exc:
        form.add_error("new_email", _problem_text(exc.reason))
        return _page(request, subscriber, token, rows, bound=form)
    messages.success(
        request,
        _(
            "We've sent a link to %(email)s. Your address changes when you click it; until then "
            "we keep using this one."
        )
        % {"email": new_email},
    )
    return _back(token)


HANDLERS: dict[str, Handler] = {
    "consent": _consent,
    "unsubscribe_all": _unsubscribe_all,
    "frequency": _frequency,
    "pause": _pause,
    "resume": _resume,
    "profile": _profile,
    "email": _email,
}


@never_cache
@require_http_methods(["GET", "POST"])
def email_change_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows one button; only the POST changes the address, so a link scanner's fetch does nothing."""
    change_id = tokens.email_change_request_id(token)
    if change_id is None:
        return _change_problem(request, "invalid")
    if request.method == "POST":
        evidence = evidence_from(request, ConsentEvent.Source.CONFIRMATION_LINK)
        try:
            change = services.email_change_confirm(request_id=change_id, evidence=evidence)
        except services.PreferenceError as exc:
            return _change_problem(request, exc.reason, email=_new_email(change_id))
        subscriber = Subscriber.objects.get(pk=change.subscriber_id)
        messages.success(request, _("Done: we now use %(email)s.") % {"email": subscriber.email})
        return redirect("subscribers:preferences", selectors.preferences_token(subscriber))
    waiting = EmailChangeRequest.objects.filter(pk=change_id).first()
    if waiting is None:
        return _change_problem(request, "unknown")
    if not waiting.is_open:
        reason = (
            "already_confirmed"
            if waiting.confirmed_at
            else "cancelled"
            if waiting.cancelled_at
            else "expired"
        )
        return _change_problem(request, reason)
    return render(request, "subscribers/email_change_confirm.html", {"change": waiting, "token": token})


def _page(
    request: HttpRequest,
    subscriber: Subscriber,
    token: str,
    rows: Rows,
    *,
    bound: forms.Form | None = None,
    problem: str = "",
    status: int | None = None,
) -> HttpResponse:
    """The whole page; ``bound`` (a form that failed) replaces its blank counterpart."""

    def pick(form: forms.Form, purpose_id: int | None = None) -> forms.Form:
        if bound is None or type(bound) is not type(form):
            return form
        if purpose_id is not None and _int(bound.data.get("purpose")) != purpose_id:
            return form
        return bound

    sections = [
        {
            "row": row,
            "frequency_form": pick(FrequencyForm(rows=rows, row=row), row.purpose.pk) if row.email else None,
            "switch_errors": _all_errors(pick(ConsentSwitchForm(rows=rows), row.purpose.pk)),
        }
        for row in rows
    ]
    context: dict[str, Any] = {
        "subscriber": subscriber,
        "token": token,
        "sections": sections,
        # Pending ones count: "Unsubscribe from everything" withdraws them too.
        "anything_on": any(
            c.state is not None and c.state.status in _OPEN for row in rows for c in row.channels
        ),
        "paused": subscriber.paused_until is not None and subscriber.paused_until > timezone.now(),
        "pause_form": pick(PauseForm()),
        "profile_form": pick(ProfileForm(subscriber=subscriber)),
        "email_form": pick(EmailChangeForm()),
        "pending_change": selectors.open_email_change(subscriber=subscriber),
        "suppression": selectors.suppression_in_force(subscriber=subscriber),
        "contact_email": contact_email(),
        # Every error is listed at the top too: a form's own spot may be far down the page.
        "errors": bound.errors if bound is not None else {},
        "problem": problem,
    }
    invalid = bool(bound is not None and bound.errors) or bool(problem)
    return render(
        request, "subscribers/preferences.html", context, status=status or (400 if invalid else 200)
    )


def _evidence(request: HttpRequest, form: forms.Form) -> Evidence:
    """The evidence of one change: what the person sent, as the form understood it."""
    submitted = {"action": getattr(form, "action", "")}
    submitted.update({k: v for k, v in getattr(form, "cleaned_data", {}).items() if k != "action"})
    return evidence_from(request, ConsentEvent.Source.PREFERENCE_CENTRE, submitted)


def _all_errors(form: forms.Form) -> list[str]:
    return [str(e) for errors in form.errors.values() for e in errors] if form.is_bound else []


def _back(token: str) -> HttpResponse:
    return redirect("subscribers:preferences", token)


def _row(rows: Rows, value: Any) -> PurposePreferences | None:
    wanted = _int(value)
    return next((r for r in rows if r.purpose.pk == wanted), None)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _problem_text(reason: str, *, purpose: str = "") -> str:
    if reason == "text_changed":
        return _(
            "The wording for %(purpose)s changed since you opened this page. Please read it again "
            "and switch it on if you still want it."
        ) % {"purpose": purpose}
    return {
        "postal_address_needed": _(
            "Mail by post needs your full postal address. Add it under “Your name and address” below, "
            "then switch this on."
        ),
        "not_offered": _("We don't offer this any more, so it can't be switched on."),
        "invalid_address": _("This doesn't look like an email address."),
        "same_address": _("That's the address we already use."),
    }.get(reason, _("That couldn't be done. Nothing has been changed."))


def _new_email(change_id: Any) -> str:
    change = EmailChangeRequest.objects.filter(pk=change_id).first()
    return change.new_email if change else ""


def _change_problem(request: HttpRequest, reason: str, *, email: str = "") -> HttpResponse:
    status = {
        "unknown": 404,
        "expired": 410,
        "cancelled": 410,
        "already_confirmed": 200,
        "address_taken": 409,
    }
    return render(
        request,
        "subscribers/email_change_problem.html",
        {"reason": reason, "email": email, "contact_email": contact_email()},
        status=status.get(reason, 400),
    )
