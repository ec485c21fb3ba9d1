"""Turn a campaign into email messages: render once per campaign, personalise per recipient.

``prepare(campaign)`` does the expensive work once: Markdown to HTML, the layout and the
legal footer (``templates/marketing/email/campaign.html``), CSS inlining (css-inline) and
the plain-text alternative (html2text). What differs per recipient is left in both parts
as fixed placeholders (``PLACEHOLDERS``); ``build_message(prepared, recipient)`` fills them
in one pass of one regular expression, with the first name HTML-escaped in the HTML part
and as typed in the text part. One pass means a value that happens to contain a
placeholder (a name typed as ``%%UNSUBSCRIBE_URL%%``) is never expanded again.

Placeholders are ``%%NAME%%``: HTML escaping never produces ``%``, css-inline and html2text
leave them alone (tested), and Markdown does not treat them as markup.

Plain Python: no Celery, no request. Settings are read when called, never at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr
from typing import Any

import css_inline
import html2text
import markdown
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.html import escape
from django.utils.translation import gettext

from marketing.models import Campaign
from subscribers import links

FIRST_NAME = "%%FIRST_NAME%%"
UNSUBSCRIBE_URL = "%%UNSUBSCRIBE_URL%%"
PREFERENCES_URL = "%%PREFERENCES_URL%%"
CONSENTED_ON = "%%CONSENTED_ON%%"
PLACEHOLDERS = (FIRST_NAME, UNSUBSCRIBE_URL, PREFERENCES_URL, CONSENTED_ON)
# Only in the tracked copy (``tracking.tracked_copy``): the recipient's tracking base.
TRACKING_URL = "%%TRACKING_URL%%"
_PLACEHOLDER_RE = re.compile("|".join(re.escape(p) for p in (*PLACEHOLDERS, TRACKING_URL)))
# What marketers write in a subject, preheader or body for the recipient's first name.
_FIRST_NAME_TAG = re.compile(r"\{\{\s*first_name\s*\}\}")

TEMPLATE = "marketing/email/campaign.html"
MARKDOWN_EXTENSIONS = ["extra", "sane_lists"]
# The clean frame used when a campaign has no layout. Element selectors only (the lowest
# specificity), so a layout's CSS, which comes after it, wins on equal selectors.
DEFAULT_CSS = """
body { margin: 0; padding: 0; background-color: #f4f4f5; }
td { font-family: Arial, Helvetica, sans-serif; font-size: 16px; line-height: 1.5; color: #212529; }
h1 { font-size: 26px; line-height: 1.25; margin: 0 0 16px 0; }
h2 { font-size: 21px; line-height: 1.3; margin: 24px 0 12px 0; }
h3 { font-size: 18px; margin: 20px 0 8px 0; }
p { margin: 0 0 16px 0; }
a { color: #1a4fbf; }
img { max-width: 100%; height: auto; border: 0; }
blockquote { margin: 0 0 16px 0; padding-left: 12px; border-left: 3px solid #dee2e6; color: #555555; }
@media only screen and (max-width: 620px) {
  .email-container { width: 100% !important; }
  .email-pad { padding-left: 16px !important; padding-right: 16px !important; }
}
"""


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    email: str
    name: str
    consented_at: datetime | None
    link_generation: int = 1  # Subscriber.link_generation: preferences links carry it
    # ``tracking.url_maker()(delivery id)`` for a subscriber who agreed to tracking, else "".
    tracking_url: str = ""


@dataclass(frozen=True)
class PreparedCampaign:
    """A campaign rendered once; ``html``, ``text`` and ``subject`` still hold the placeholders."""

    campaign_id: int
    purpose_id: int
    purpose_slug: str
    purpose_name: str
    subject: str
    html: str
    text: str
    first_name_fallback: str


def prepare(campaign: Campaign) -> PreparedCampaign:
    """Render ``campaign`` once: layout, legal footer, inlined CSS and the plain-text part."""
    purpose = campaign.purpose
    layout = campaign.layout
    body = _FIRST_NAME_TAG.sub(FIRST_NAME, campaign.body)
    if campaign.body_format == Campaign.BodyFormat.MARKDOWN:
        body = markdown.markdown(body, extensions=MARKDOWN_EXTENSIONS, output_format="html")
    subject = _one_line(_FIRST_NAME_TAG.sub(FIRST_NAME, campaign.subject))
    context: dict[str, Any] = {
        "subject": subject,
        "preheader": _one_line(_FIRST_NAME_TAG.sub(FIRST_NAME, campaign.preheader)),
        "body_html": body,
        "css": DEFAULT_CSS + "\n" + (layout.css if layout else ""),
        "header_html": layout.header_html if layout else "",
        "footer_html": layout.footer_html if layout else "",
        "purpose_name": purpose.name,
        "organisation_name": settings.ORGANISATION_NAME,
        "organisation_address": settings.ORGANISATION_ADDRESS,
        "first_name": FIRST_NAME,
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "preferences_url": PREFERENCES_URL,
        "consented_on": CONSENTED_ON,
    }
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
    html = inliner.inline(render_to_string(TEMPLATE, context))
    # The preheader is hidden preview text: it has no place in the plain-text part.
    text = _to_text(inliner.inline(render_to_string(TEMPLATE, {**context, "for_text": True})))
    return PreparedCampaign(
        campaign_id=campaign.pk,
        purpose_id=purpose.pk,
        purpose_slug=purpose.slug,
        purpose_name=purpose.name,
        subject=subject,
        html=html,
        text=text,
        first_name_fallback=campaign.first_name_fallback,
    )


def recipient_values(
    prepared: PreparedCampaign, recipient: Recipient
) -> tuple[dict[str, str], dict[str, str]]:
    """The placeholder values for one recipient: (for the HTML part, for the text part)."""
    first_name = _first_name(recipient.name) or prepared.first_name_fallback
    unsubscribe = links.make("unsubscribe", recipient.subscriber_id, prepared.purpose_id)
    preferences = links.make("preferences", recipient.subscriber_id, generation=recipient.link_generation)
    text = {
        FIRST_NAME: first_name,
        UNSUBSCRIBE_URL: _site_url(reverse("subscribers:unsubscribe", args=[unsubscribe])),
        PREFERENCES_URL: _site_url(reverse("subscribers:preferences", args=[preferences])),
        CONSENTED_ON: _consented_on(recipient.consented_at),
        TRACKING_URL: recipient.tracking_url,
    }
    return {key: escape(value) for key, value in text.items()}, text


def subject_for(prepared: PreparedCampaign, recipient: Recipient) -> str:
    """The subject with the first name filled in; always one line (no header injection)."""
    first_name = _first_name(recipient.name) or prepared.first_name_fallback
    return _one_line(prepared.subject.replace(FIRST_NAME, first_name))


def build_message(
    prepared: PreparedCampaign, recipient: Recipient, *, connection: Any = None
) -> EmailMultiAlternatives:
    """One recipient's message: placeholders filled, RFC 8058 and List-Id headers set."""
    html_values, text_values = recipient_values(prepared, recipient)
    message = EmailMultiAlternatives(
        subject=subject_for(prepared, recipient),
        body=_fill(prepared.text, text_values),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient.email],
        headers=_headers(prepared, unsubscribe_url=text_values[UNSUBSCRIBE_URL]),
        connection=connection,
    )
    message.attach_alternative(_fill(prepared.html, html_values), "text/html")
    return message


def list_id(prepared: PreparedCampaign) -> str:
    """RFC 2919 List-Id, one per purpose: ``Newsletter <newsletter.example.com>``."""
    return formataddr((prepared.purpose_name, f"{prepared.purpose_slug.lower()}.{_sender_domain()}"))


def _headers(prepared: PreparedCampaign, *, unsubscribe_url: str) -> dict[str, str]:
    mailto = settings.UNSUBSCRIBE_MAILTO or settings.SENDER_EMAIL
    return {
        # RFC 8058 §3.1: an https URI to POST "List-Unsubscribe=One-Click" to, and a mailto.
        "List-Unsubscribe": f"<{unsubscribe_url}>, <mailto:{mailto}?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": list_id(prepared),
        "X-Campaign-Id": str(prepared.campaign_id),
    }


def _fill(template: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(0)], template)


def _first_name(name: str) -> str:
    words = name.split()
    return words[0] if words else ""


def _one_line(value: str) -> str:
    # A newline in a header would start a new header: collapse every kind of whitespace.
    return " ".join(value.split())


def _consented_on(at: datetime | None) -> str:
    # Completes "…you agreed to Newsletter emails" in the footer; nothing when unknown.
    if at is None:
        return ""
    return " " + gettext("on %(date)s") % {"date": dateformat.format(timezone.localtime(at), "j F Y")}


def _site_url(path: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def _sender_domain() -> str:
    domain = settings.SENDER_EMAIL.rpartition("@")[2].strip().lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: long links stay whole
    converter.ignore_links = False
    converter.ignore_images = True
    converter.ignore_tables = True  # layout tables, not data: keep their content only
    converter.unicode_snob = True
    lines = [line.rstrip() for line in converter.handle(html).splitlines()]
    # Markdown's hard breaks are trailing spaces; layout cells leave runs of blank lines.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
