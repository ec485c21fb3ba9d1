"""The "manage my subscription" form: one address in, a fresh preferences link out by email."""

from __future__ import annotations

from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Layout, Submit
from django import forms
from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _

from subscribers.forms import normalise_email


class ManageLinkForm(forms.Form):
    email = forms.CharField(
        label=_("Your email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}),
    )
    # Honeypot, as on the signup form: hidden from people and screen readers; bots fill it in.
    website = forms.CharField(required=False, label=_("Leave this empty"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        helper = FormHelper()
        helper.form_method = "post"
        # Also shown on the bad-link page, whose own URL is not the one to post to.
        helper.form_action = reverse_lazy("subscribers:manage")
        helper.form_id = "manage-form"
        helper.attrs = {"novalidate": ""}
        helper.layout = Layout(
            "email",
            Div(
                Field("website", autocomplete="off", tabindex="-1"), css_class="hp-field", aria_hidden="true"
            ),
            Submit("submit", _("Email me a link"), css_id="manage-form-submit"),
        )
        self.helper = helper

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data["email"])

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))
