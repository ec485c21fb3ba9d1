"""One API call for a whole batch, where the provider can personalise each recipient's copy.

Mailgun and SendGrid take one message with many ``to`` addresses plus per-recipient data,
and send every recipient a separate copy with that data substituted into the subject, both
bodies and the headers. anymail exposes this as ``merge_data`` (body substitutions),
``merge_headers`` (per-recipient headers) and ``merge_metadata`` (per-recipient data that
comes back with webhook events). ``build_message(prepared, recipients)`` turns the campaign
rendered once (``rendering.prepare``) into such a message: each ``%%…%%`` placeholder of
``rendering`` becomes the provider's merge tag, and each recipient's values are
``rendering.recipient_values`` for them, so a batch copy and a single message are identical.
The first name, links and consent date get two variables each, HTML-escaped for the HTML
part and as typed for the text part and the subject.

Providers not listed in ``MERGE_TAGS`` (Postmark, which personalises bodies only through
stored templates; SMTP) keep dispatch's one-message-per-recipient path over one connection.

Plain Python: no Celery, no request. Settings are read when called, never at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from marketing import rendering

# Backend path -> (format of a merge tag in the message, format of the merge_data key).
MERGE_TAGS: dict[str, tuple[str, str]] = {
    # https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/#batch-sending
    "anymail.backends.mailgun.EmailBackend": ("%recipient.{}%", "{}"),
    # Legacy substitutions are plain string replacement: the key is the tag itself.
    # anymail applies merge_field_format to the key; "{}" (set in esp_extra) keeps it as is.
    "anymail.backends.sendgrid.EmailBackend": ("-nl_{}-", "-nl_{}-"),
}
# Providers that fill merge tags in headers too ("%recipient.KEY% virtually anywhere in the
# message, including header fields", Mailgun's batch sending docs): the one-click header then
# names the unsubscribe variable the footer already sends, instead of carrying each
# recipient's link a second time (a third of the call's bytes, which anymail's ``requests``
# percent-encodes in Python one byte at a time). SendGrid's substitutions skip headers.
TAGS_IN_HEADERS = frozenset({"anymail.backends.mailgun.EmailBackend"})
# anymail's per-recipient status names (anymail.message.ANYMAIL_STATUSES).
REFUSED_STATUSES = frozenset({"invalid", "rejected", "failed"})
# Placeholder -> variable name; the HTML part uses the name with ``_html`` appended.
VARIABLES = {
    rendering.FIRST_NAME: "first_name",
    rendering.UNSUBSCRIBE_URL: "unsubscribe_url",
    rendering.PREFERENCES_URL: "preferences_url",
    rendering.CONSENTED_ON: "consented_on",
    rendering.TRACKING_URL: "tracking_url",
}
# Metadata key that carries Delivery.pk to the provider's webhooks and back.
DELIVERY_ID = "delivery_id"
CAMPAIGN_ID = "campaign_id"


def supported(backend: str | None = None) -> bool:
    """True when ``backend`` (default ``settings.EMAIL_BACKEND``) sends a batch in one call."""
    return (backend or settings.EMAIL_BACKEND) in MERGE_TAGS


def build_message(
    prepared: rendering.PreparedCampaign,
    recipients: Mapping[int, rendering.Recipient],
    *,
    connection: Any = None,
    backend: str | None = None,
) -> EmailMultiAlternatives:
    """One message for all ``recipients`` (keyed by Delivery id), personalised by the provider."""
    backend = backend or settings.EMAIL_BACKEND
    tag_format, key_format = MERGE_TAGS[backend]
    tags_in_headers = backend in TAGS_IN_HEADERS
    # Only what this copy holds: the untracked copy has no tracking URL to fill.
    written = prepared.subject + prepared.text + prepared.html
    used = {p: name for p, name in VARIABLES.items() if p in written}
    if tags_in_headers:
        used.setdefault(rendering.UNSUBSCRIBE_URL, VARIABLES[rendering.UNSUBSCRIBE_URL])
    link_maker = rendering.LinkMaker()
    values = {
        delivery_id: rendering.recipient_values(prepared, recipient, link_maker=link_maker)
        for delivery_id, recipient in recipients.items()
    }
    # An ``_html`` variable only where escaping changes someone's value (a name with "&"):
    # links and dates never need one, and the call carries every recipient's variables.
    escaped = {p for p in used if any(html[p] != text[p] for html, text in values.values())}
    text_tags = {p: tag_format.format(name) for p, name in used.items()}
    html_tags = {p: tag_format.format(f"{name}_html" if p in escaped else name) for p, name in used.items()}

    merge_data: dict[str, dict[str, str]] = {}
    merge_headers: dict[str, dict[str, str]] = {}
    merge_metadata: dict[str, dict[str, str]] = {}
    for delivery_id, recipient in recipients.items():
        html_values, text_values = values[delivery_id]
        data = {}
        for placeholder, name in used.items():
            data[key_format.format(name)] = text_values[placeholder]
            if placeholder in escaped:
                data[key_format.format(f"{name}_html")] = html_values[placeholder]
        merge_data[recipient.email] = data
        if not tags_in_headers:
            # RFC 8058: each recipient's own one-click link; the other headers are everyone's.
            merge_headers[recipient.email] = {
                "List-Unsubscribe": rendering.list_unsubscribe(text_values[rendering.UNSUBSCRIBE_URL])
            }
        merge_metadata[recipient.email] = {DELIVERY_ID: str(delivery_id)}
    shared_headers = rendering.campaign_headers(
        prepared, unsubscribe_url=text_tags.get(rendering.UNSUBSCRIBE_URL, "")
    )
    if not tags_in_headers:
        del shared_headers["List-Unsubscribe"]

    message = EmailMultiAlternatives(
        # The first name is one word (rendering._first_name): the subject stays one line.
        subject=rendering.fill_placeholders(prepared.subject, text_tags),
        body=rendering.fill_placeholders(prepared.text, text_tags),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient.email for recipient in recipients.values()],
        headers=shared_headers,
        connection=connection,
    )
    message.attach_alternative(rendering.fill_placeholders(prepared.html, html_tags), "text/html")
    message.merge_data = merge_data  # type: ignore[attr-defined]
    if merge_headers:
        message.merge_headers = merge_headers  # type: ignore[attr-defined]
    message.merge_metadata = merge_metadata  # type: ignore[attr-defined]
    message.metadata = {CAMPAIGN_ID: str(prepared.campaign_id)}  # type: ignore[attr-defined]
    if key_format != "{}":
        message.esp_extra = {"merge_field_format": "{}"}  # type: ignore[attr-defined]
    return message


def recipient_outcomes(
    message: EmailMultiAlternatives, recipients: Mapping[int, rendering.Recipient]
) -> dict[int, tuple[bool, str, str]]:
    """After a send: Delivery id -> (accepted, provider message id, error) from anymail's status."""
    status = getattr(message, "anymail_status", None)
    per_recipient = getattr(status, "recipients", None) or {}
    lowered = {address.lower(): value for address, value in per_recipient.items()}
    outcomes: dict[int, tuple[bool, str, str]] = {}
    for delivery_id, recipient in recipients.items():
        entry = per_recipient.get(recipient.email) or lowered.get(recipient.email.lower())
        if entry is None:
            # The call was accepted but the answer does not name this address; it was sent with
            # the rest, so record it as sent rather than risk a second copy.
            outcomes[delivery_id] = (True, str(getattr(status, "message_id", "") or ""), "")
        elif entry.status in REFUSED_STATUSES:
            outcomes[delivery_id] = (False, "", f"provider refused the recipient: {entry.status}")
        else:  # sent, queued, unknown: the provider took it
            outcomes[delivery_id] = (True, str(entry.message_id or ""), "")
    return outcomes
