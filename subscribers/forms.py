"""The signup form: one unticked box per purpose and channel, each after its full text."""

from __future__ import annotations

from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Fieldset, Layout, LayoutObject, Submit
from django import forms
from django.template.loader import render_to_string
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from email_validator import EmailNotValidError, validate_email

from subscribers.models import Channel
from subscribers.selectors import SignupOffer
from subscribers.services import ConsentChoice

ADDRESS_FIELDS = ("address_line1", "address_line2", "postal_code", "city", "country")
CHANNEL_LABELS = {Channel.EMAIL: _("by email"), Channel.POSTAL: _("by postal mail")}


class PurposeBlock(LayoutObject):
    """One purpose: its name, its full consent text, then its checkboxes.

    Rendered through a template file rather than crispy's ``HTML``/``Fieldset``, which treat
    their text as template source: staff-written texts must be shown, never evaluated.
    """

    def __init__(self, offer: SignupOffer, *fields: Any) -> None:
        self.offer = offer
        self.fields = list(fields)

    def render(self, form: forms.Form, context: Any, template_pack: Any = None, **kwargs: Any) -> str:
        boxes = self.get_rendered_fields(form, context, template_pack or "bootstrap5", **kwargs)
        return render_to_string(
            "subscribers/_purpose_block.html",
            {"purpose": self.offer.purpose, "text": self.offer.text, "boxes": boxes},
        )


def normalise_email(value: str) -> str:
    """Validate and normalise an address without mangling it.

    The domain is lower-cased (and kept in Unicode for internationalised domains, sent as
    IDNA 2008: ``addresses.smtp_address``); the local part is kept exactly as typed,
    plus-tags included. A non-ASCII local part is refused: it needs SMTPUTF8 at every hop
    and in every provider, which we cannot promise.
    """
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise forms.ValidationError(
            _("This doesn't look like an email address: %(reason)s"), params={"reason": str(exc)}
        ) from exc
    if result.smtputf8:
        raise forms.ValidationError(
            _(
                "We can't send to addresses with accented or non-Latin letters before the @ yet. "
                "Please use another address."
            )
        )
    return result.normalized


class SignupForm(forms.Form):
    email = forms.CharField(
        label=_("Email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}),
    )
    name = forms.CharField(
        label=_("Your name (optional)"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    address_line1 = forms.CharField(label=_("Street and number"), max_length=200, required=False)
    address_line2 = forms.CharField(label=_("Address line 2 (optional)"), max_length=200, required=False)
    postal_code = forms.CharField(label=_("Postal code"), max_length=20, required=False)
    city = forms.CharField(label=_("Town or city"), max_length=100, required=False)
    country = forms.CharField(label=_("Country"), max_length=100, required=False)
    # Honeypot: hidden from people (and from screen readers); bots fill it in.
    website = forms.CharField(required=False, label=_("Leave this empty"))

    def __init__(self, *args: Any, offers: list[SignupOffer], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offers = offers
        for offer in offers:
            for channel in offer.purpose.channels:
                # Tracking is about the emails, not a way of getting them: no "(by email)".
                how = "" if offer.purpose.is_tracking else f" ({CHANNEL_LABELS[channel]})"
                self.fields[self.consent_field(offer, channel)] = forms.BooleanField(
                    required=False, initial=False, label=f"{offer.text.statement}{how}"
                )

    @cached_property
    def helper(self) -> FormHelper:
        # Only rendering needs the layout: a POST that validates and redirects never builds it.
        return self._helper()

    @staticmethod
    def consent_field(offer: SignupOffer, channel: str) -> str:
        # The text version is part of the field name: what was ticked is tied to what was shown.
        return f"consent_{offer.text.pk}_{channel}"

    def _helper(self) -> FormHelper:
        helper = FormHelper()
        helper.form_tag = True
        helper.form_method = "post"
        helper.attrs = {"novalidate": ""}
        consent_blocks = []
        for offer in self.offers:
            boxes = [
                Field(self.consent_field(offer, ch), data_channel=str(ch), wrapper_class="consent-choice")
                for ch in offer.purpose.channels
            ]
            consent_blocks.append(PurposeBlock(offer, *boxes))
        helper.layout = Layout(
            Fieldset(_("About you"), "email", "name"),
            *consent_blocks,
            Fieldset(
                _("Your postal address"),
                HTML(
                    '<p class="form-text">{}</p>'.format(
                        _("Only needed for mail by post. We use it for nothing else.")
                    )
                ),
                *ADDRESS_FIELDS,
                css_id="postal-address",
            ),
            Div(
                Field("website", autocomplete="off", tabindex="-1"), css_class="hp-field", aria_hidden="true"
            ),
            Submit("submit", _("Sign up"), css_class="btn-lg"),
        )
        return helper

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data["email"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if any(key.startswith("consent_") and key not in self.fields for key in self.data):
            raise forms.ValidationError(
                _(
                    "The wording of what you can sign up for changed since you opened this page. "
                    "Please read it again below and tick what you want."
                )
            )
        choices = self.choices()
        if not choices:
            raise forms.ValidationError(
                _("Tick at least one box: choose what you would like to receive, and how.")
            )
        if all(c.purpose.is_tracking for c in choices):
            raise forms.ValidationError(
                _(
                    "Noting opens and clicks only applies to emails you get from us: tick at least "
                    "one kind of mail too. (Already subscribed? Switch it on from the link at the "
                    "bottom of any of our emails.)"
                )
            )
        if any(c.channel == Channel.POSTAL for c in choices):
            for name in ("address_line1", "postal_code", "city", "country"):
                if not cleaned.get(name, "").strip():
                    self.add_error(name, _("Needed for mail by post."))
        for name in ("name", *ADDRESS_FIELDS):
            value = cleaned.get(name, "")
            if any(ord(ch) < 32 for ch in value):
                self.add_error(name, _("Please remove line breaks and control characters."))
        return cleaned

    def choices(self) -> list[ConsentChoice]:
        data = getattr(self, "cleaned_data", {})
        return [
            ConsentChoice(consent_text=offer.text, channel=Channel(channel))
            for offer in self.offers
            for channel in offer.purpose.channels
            if data.get(self.consent_field(offer, channel))
        ]

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))

    def postal_address(self) -> dict[str, str] | None:
        if not any(c.channel == Channel.POSTAL for c in self.choices()):
            return None
        return {name: self.cleaned_data.get(name, "").strip() for name in ADDRESS_FIELDS}

    def submitted(self) -> dict[str, Any]:
        """What the visitor sent, for the consent evidence (the honeypot left out)."""
        return {
            "email": self.cleaned_data["email"],
            "name": self.cleaned_data.get("name", ""),
            "choices": [
                {
                    "purpose": c.purpose.slug,
                    "channel": str(c.channel),
                    "consent_text": c.consent_text.pk,
                    "version": c.consent_text.version,
                }
                for c in self.choices()
            ],
            "postal_address": self.postal_address(),
        }
