"""The forms of the preference centre: one small form per change, each one service call.

Every form carries a hidden ``action`` naming it, so the page's one URL knows which form
was sent. Purposes and channels are checked against what the page offered this
subscriber (``selectors.preference_centre``), never taken on trust.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Field, Hidden, Layout, Submit
from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from subscribers.forms import ADDRESS_FIELDS, SignupForm, normalise_email
from subscribers.models import Channel, Frequency, Purpose, Subscriber
from subscribers.selectors import PurposePreferences
from subscribers.services import PAUSE_MONTHS

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise

UNKNOWN_CHOICE = _("We don't offer that here. Nothing has been changed.")


def _helper(action: str, submit: str | StrPromise, *fields: Any, form_id: str) -> FormHelper:
    helper = FormHelper()
    helper.form_method = "post"
    helper.form_id = form_id
    helper.attrs = {"novalidate": ""}
    # Several forms share the page: ids must stay unique.
    submit_button = Submit("submit", submit, css_id=f"{form_id}-submit")
    helper.layout = Layout(Hidden("action", action), *fields, submit_button)
    return helper


class ConsentSwitchForm(forms.Form):
    """Switch one purpose on one channel on (``enabled=1``) or off (``enabled=0``).

    Switching on also sends ``consent_text``, the id of the text version the page showed:
    that, not whatever is current when the click arrives, is what the person agrees to.
    """

    action = "consent"

    purpose = forms.TypedChoiceField(coerce=int, error_messages={"invalid_choice": UNKNOWN_CHOICE})
    channel = forms.ChoiceField(choices=Channel.choices, error_messages={"invalid_choice": UNKNOWN_CHOICE})
    enabled = forms.TypedChoiceField(
        choices=[("1", _("On")), ("0", _("Off"))], coerce=lambda v: v == "1", empty_value=None
    )
    # Not required: a missing one is answered like a changed one (the service compares).
    consent_text = forms.IntegerField(required=False, error_messages={"invalid": UNKNOWN_CHOICE})

    def __init__(self, *args: Any, rows: list[PurposePreferences], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows = {row.purpose.pk: row for row in rows}
        purpose = cast(forms.TypedChoiceField, self.fields["purpose"])
        purpose.choices = [(pk, row.purpose.name) for pk, row in self.rows.items()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("enabled"):
            # Withdrawing does not depend on what was shown: keep it out of the evidence.
            cleaned.pop("consent_text", None)
        row = self.rows.get(cleaned.get("purpose", 0))
        channel = cleaned.get("channel")
        if row is None or channel is None or cleaned.get("enabled") is None:
            return cleaned
        switch = next((c for c in row.channels if c.channel == channel), None)
        if switch is None or (cleaned["enabled"] and not switch.offered):
            raise forms.ValidationError(UNKNOWN_CHOICE)
        return cleaned

    @property
    def purpose_obj(self) -> Purpose:
        return self.rows[self.cleaned_data["purpose"]].purpose


class FrequencyForm(forms.Form):
    """How often one purpose may email: every issue, at most weekly, at most monthly."""

    action = "frequency"

    purpose = forms.TypedChoiceField(
        coerce=int, widget=forms.HiddenInput, error_messages={"invalid_choice": UNKNOWN_CHOICE}
    )
    frequency = forms.ChoiceField(
        label=_("How often"),
        choices=Frequency.choices,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": UNKNOWN_CHOICE},
    )

    def __init__(
        self, *args: Any, rows: list[PurposePreferences], row: PurposePreferences | None = None, **kwargs: Any
    ) -> None:
        if row is not None and row.email is not None:
            kwargs.setdefault("initial", {"purpose": row.purpose.pk, "frequency": row.email.frequency})
            kwargs.setdefault("auto_id", f"id_frequency_{row.purpose.pk}_%s")
        super().__init__(*args, **kwargs)
        self.rows = {r.purpose.pk: r for r in rows if r.email is not None}
        purpose = cast(forms.TypedChoiceField, self.fields["purpose"])
        purpose.choices = [(pk, r.purpose.name) for pk, r in self.rows.items()]
        name = row.purpose.name if row else ""
        self.fields["frequency"].label = _("How often we email you about %(purpose)s") % {"purpose": name}
        self.helper = _helper(
            self.action,
            _("Save how often"),
            "purpose",
            "frequency",
            form_id=f"frequency-form-{row.purpose.pk if row else 0}",
        )

    @property
    def purpose_obj(self) -> Purpose:
        return self.rows[self.cleaned_data["purpose"]].purpose


class PauseForm(forms.Form):
    action = "pause"

    months = forms.TypedChoiceField(
        label=_("Pause everything for"),
        coerce=int,
        choices=[(m, ngettext_lazy("%(n)d month", "%(n)d months", m) % {"n": m}) for m in PAUSE_MONTHS],
        widget=forms.RadioSelect,
        error_messages={
            "invalid_choice": _("Choose 1, 3 or 6 months."),
            "required": _("Choose how long to pause for."),
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_pause_%s")
        super().__init__(*args, **kwargs)
        self.helper = _helper(self.action, _("Pause"), Field("months"), form_id="pause-form")


class ResumeForm(forms.Form):
    action = "resume"


class UnsubscribeAllForm(forms.Form):
    """Every switch off at once: the one button, with nothing to fill in."""

    action = "unsubscribe_all"


class ProfileForm(forms.Form):
    """Name and postal address. Only what changes is recorded."""

    action = "profile"

    name = forms.CharField(
        label=_("Your name"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    address_line1 = SignupForm.base_fields["address_line1"]
    address_line2 = SignupForm.base_fields["address_line2"]
    postal_code = SignupForm.base_fields["postal_code"]
    city = SignupForm.base_fields["city"]
    country = SignupForm.base_fields["country"]

    def __init__(self, *args: Any, subscriber: Subscriber, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {n: getattr(subscriber, n) for n in ("name", *ADDRESS_FIELDS)})
        kwargs.setdefault("auto_id", "id_profile_%s")
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            self.action, _("Save name and address"), "name", *ADDRESS_FIELDS, form_id="profile-form"
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in ("name", *ADDRESS_FIELDS):
            if any(ord(ch) < 32 for ch in cleaned.get(name, "")):
                self.add_error(name, _("Please remove line breaks and control characters."))
        return cleaned


class EmailChangeForm(forms.Form):
    action = "email"

    new_email = forms.CharField(
        label=_("New email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_change_%s")
        super().__init__(*args, **kwargs)
        self.helper = _helper(self.action, _("Send a confirmation link"), "new_email", form_id="email-form")

    def clean_new_email(self) -> str:
        return normalise_email(self.cleaned_data["new_email"])
