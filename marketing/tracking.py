"""Open and click tracking, only in messages to subscribers who agreed to it.

Agreeing is a purpose of its own (``Purpose.Kind.TRACKING``, asked for on the signup page
and switched in the preference centre). Everyone else gets the campaign exactly as
written: no pixel, no rewritten link.

**Token.** Each tracked message carries one token naming its ``Delivery``:
``<delivery id in base62>:<signature>``, about 50 characters. The signature is
``django.core.signing.Signer`` (HMAC-SHA256 keyed by ``SECRET_KEY``, verified against
``SECRET_KEY_FALLBACKS`` too, so rotating the key keeps links already sent working) under
its own salt, so no unsubscribe, preferences or confirmation token is a tracking token or
the reverse, and no token can be made up or altered. Tokens never expire: a link in an
old email must still lead to its page.

**URLs.** A recipient's tracking base is ``<SITE_URL>/t/<token>`` (``url_maker``: the prefix
and signer once per batch, then one HMAC per recipient, no URL lookup); the open pixel is
``<base>/open.gif`` and link *n* of the campaign is ``<base>/<n>/``.

**Which links.** Only the links the marketer wrote in the campaign *body*
(``campaign_links``): the body cannot change once sending starts, so link *n* stays the
same page for the life of the campaign, while the layout, which can be edited at any time,
keeps its own links untracked (an address that is in the body too is the same link).
Each distinct http(s) address is one link; mailto:, anchors, personalised addresses and
our own unsubscribe and preferences pages are never rewritten.

**Wiring** (``rendering``/``dispatch``): ``tracked_copy(prepared, campaign)`` once per
campaign, next to the plain ``prepared``; per batch, ``trackable_subscriber_ids`` decides
which copy each recipient gets; ``PLACEHOLDER`` is filled with ``url_maker()(id)`` for
tracked recipients; ``Delivery.tracked`` records which messages carried tracking (set by
dispatch in the statement that records the batch; ``deliveries_mark_tracked`` for one-offs);
``disable_provider_tracking`` on every message keeps the provider's own tracking off.

Plain Python: no Celery, no request. Settings are read when called, never at import.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, TypeVar

import markdown
from anymail.backends.base import BasePayload
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from html2text.utils import escape_md

from marketing import events, provider_events, rendering
from marketing.models import Campaign, Delivery
from subscribers.selectors import trackable_subscriber_ids

if TYPE_CHECKING:
    from django.core.mail import EmailMessage

# The per-recipient tracking base in a tracked copy; rendering fills it like the others.
PLACEHOLDER = rendering.TRACKING_URL
OPEN_SUFFIX = "/open.gif"
# How our own events are named among the providers' (DeliveryEvent.esp_name).
ESP_NAME = "platform"
MAX_TOKEN_LENGTH = 100
_SALT = "marketing.tracking"
_MARK = "TOKEN"
# What marketers write for the first name (as rendering reads it): an address holding it
# differs per recipient, so it is left alone.
_FIRST_NAME_TAG = re.compile(r"\{\{\s*first_name\s*\}\}")
_PIXEL = (
    f'<img src="{PLACEHOLDER}{OPEN_SUFFIX}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;">'
)


# --- Tokens and URLs --------------------------------------------------------------------


def _signer() -> signing.Signer:
    return signing.Signer(salt=_SALT)


def make_token(delivery_id: int) -> str:
    return _signer().sign(signing.b62_encode(int(delivery_id)))


def read_token(token: str) -> int | None:
    """The delivery id in ``token`` if we made it, else None. Never raises for bad input."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        value = _signer().unsign(token)
        delivery_id = signing.b62_decode(value)
    except (signing.BadSignature, ValueError):
        return None
    return delivery_id if delivery_id > 0 else None


def url_prefix() -> str:
    """``<SITE_URL>/t/``: what comes before the token."""
    path = reverse("marketing:open", args=[_MARK])
    return settings.SITE_URL.rstrip("/") + path[: path.index(_MARK)]


def url_maker() -> Callable[[int], str]:
    """The value of ``PLACEHOLDER`` for a delivery id, as a function made once per batch:
    the prefix and the signer are worked out once, then each recipient costs one HMAC."""
    prefix, signer = url_prefix(), rendering.BatchSigner(_signer())
    return lambda delivery_id: prefix + signer.sign(signing.b62_encode(int(delivery_id)))


def link_url(base: str, number: int) -> str:
    return f"{base}/{number}/"


# --- Which links are tracked ------------------------------------------------------------


def campaign_links(campaign: Campaign) -> list[str]:
    """The http(s) addresses in the campaign's body, first appearance first, each once.

    Link *n* of the campaign is ``campaign_links(campaign)[n - 1]``: the click endpoint
    and ``tracked_copy`` both ask this, from the body only, which is fixed once sending
    starts.
    """
    return list(_body_links(campaign.body_format, campaign.body, _own_pages()))


# Each click asks for its campaign's links: the body is rendered once per process, not per click.
@functools.lru_cache(maxsize=64)
def _body_links(body_format: str, body: str, excluded: tuple[str, ...]) -> tuple[str, ...]:
    # The body as rendering.prepare turns it into HTML.
    html = _FIRST_NAME_TAG.sub(rendering.FIRST_NAME, body)
    if body_format == Campaign.BodyFormat.MARKDOWN:
        html = markdown.markdown(html, extensions=rendering.MARKDOWN_EXTENSIONS, output_format="html")
    found: dict[str, None] = {}
    for anchor in _anchors(html):
        if anchor.href is not None and _trackable(anchor.href, excluded):
            found.setdefault(anchor.href.strip())
    return tuple(found)


def _trackable(href: str, excluded: tuple[str, ...]) -> bool:
    url = href.strip()
    return (
        url.lower().startswith(("http://", "https://"))
        and "%%" not in url  # a placeholder: different for every recipient
        and not url.startswith(excluded)
    )


def _own_pages() -> tuple[str, ...]:
    """Our pages whose links must work as sent: unsubscribe, preferences, tracking itself."""
    site = settings.SITE_URL.rstrip("/")
    pages = []
    for name in ("subscribers:unsubscribe", "subscribers:preferences", "marketing:open"):
        path = reverse(name, args=[_MARK])
        pages.append(site + path[: path.index(_MARK)])
    return tuple(pages)


# --- Rewriting --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Anchor:
    start: int  # offset of "<a" in the document
    tag: str  # the start tag as written
    href: str | None  # its first href, character references resolved


class _AnchorFinder(HTMLParser):
    """Every ``<a>`` start tag with its position, as a browser's tokenizer sees it (so
    nothing inside comments, scripts or styles)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[tuple[int, int], str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = next((value for name, value in attrs if name == "href"), None)
            self.found.append((self.getpos(), self.get_starttag_text() or "", href))


def _anchors(html: str) -> list[_Anchor]:
    finder = _AnchorFinder()
    finder.feed(html)
    finder.close()
    line_starts = [0] + [m.end() for m in re.finditer("\n", html)]
    return [_Anchor(line_starts[line - 1] + column, tag, href) for (line, column), tag, href in finder.found]


# One attribute of a start tag, as HTML tokenizes it: name, then an optional value.
_ATTRIBUTE = re.compile(r"""([^\s/>"'=][^\s/>=]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")


def _with_href(tag: str, value: str) -> str:
    """``tag`` (an ``<a …>`` start tag) with its first href's value replaced."""
    position = 2  # after "<a"
    while True:
        while position < len(tag) and (tag[position].isspace() or tag[position] == "/"):
            position += 1
        match = _ATTRIBUTE.match(tag, position)
        if match is None:
            return tag
        if match.group(1).lower() == "href" and match.group(2) is not None:
            return f'{tag[: match.start(2)]}"{value}"{tag[match.end(2) :]}'
        position = match.end()


def rewrite(html: str, *, only: Sequence[str] | None = None) -> tuple[str, list[str]]:
    """``html`` with its links pointing at the tracking base, and an open pixel added.

    Link *n* (1-based) of the returned list becomes ``PLACEHOLDER/<n>/``. With ``only``,
    exactly those addresses are links 1, 2 … (the campaign's, ``campaign_links``) and any
    other anchor is left alone; without it, every trackable http(s) link counts, in order.
    The rest of the document is kept character for character.
    """
    excluded = _own_pages()
    links = list(only) if only is not None else []
    number = {url: n for n, url in enumerate(links, start=1)}
    pieces, done = [], 0
    for anchor in _anchors(html):
        url = (anchor.href or "").strip()
        if only is None and url not in number and anchor.href is not None and _trackable(url, excluded):
            links.append(url)
            number[url] = len(links)
        if url not in number:
            continue
        pieces += [html[done : anchor.start], _with_href(anchor.tag, link_url(PLACEHOLDER, number[url]))]
        done = anchor.start + len(anchor.tag)
    pieces.append(html[done:])
    return _with_pixel("".join(pieces)), links


def _with_pixel(html: str) -> str:
    end = html.lower().rfind("</body")
    return html + _PIXEL if end < 0 else html[:end] + _PIXEL + html[end:]


def rewrite_text(text: str, links: Sequence[str]) -> str:
    """The plain-text part (html2text's Markdown) with the same links pointing at the base."""
    if not links:
        return text
    forms: dict[str, str] = {}
    for n, url in enumerate(links, start=1):
        tracked = link_url(PLACEHOLDER, n)
        forms[f"]({escape_md(url)}"] = f"]({tracked}"  # [label](url) or [label](url "title")
        forms[f"<{url}>"] = f"<{tracked}>"  # a link whose label is its address
    pattern = re.compile(
        "|".join(
            re.escape(f) + (r"(?=\)|\s)" if f.startswith("]") else "")
            for f in sorted(forms, key=len, reverse=True)
        )
    )
    return pattern.sub(lambda m: forms[m.group(0)], text)


P = TypeVar("P", bound=rendering.PreparedCampaign)


def tracked_copy(prepared: P, campaign: Campaign) -> P:
    """The campaign as tracked recipients get it: body links and pixel on ``PLACEHOLDER``."""
    links = campaign_links(campaign)
    html, _ = rewrite(prepared.html, only=links)
    return dataclasses.replace(prepared, html=html, text=rewrite_text(prepared.text, links))


def disable_provider_tracking(message: EmailMessage, *, backend: str | None = None) -> EmailMessage:
    """Tell the provider (through anymail) not to add its own open pixel or rewrite links:
    tracking is ours to do, and only with permission.

    Only where the backend (default ``settings.EMAIL_BACKEND``) takes the option per message:
    anymail refuses it for the others (Amazon SES, Brevo, Postal …), and SMTP has none.
    """
    if takes_tracking_options(backend or settings.EMAIL_BACKEND):
        message.track_opens = False  # type: ignore[attr-defined]
        message.track_clicks = False  # type: ignore[attr-defined]
    return message


@functools.cache
def takes_tracking_options(backend: str) -> bool:
    """Whether the email backend at this dotted path takes ``track_opens``/``track_clicks``
    per message: its module's anymail payload sets both (anymail's base refuses them)."""
    module = importlib.import_module(backend.rpartition(".")[0])
    classes: list[Any] = [c for c in vars(module).values() if isinstance(c, type)]
    payloads = [c for c in classes if issubclass(c, BasePayload)]
    return any(
        c.set_track_opens is not BasePayload.set_track_opens
        and c.set_track_clicks is not BasePayload.set_track_clicks
        for c in payloads
    )


# --- Sending: which messages carry tracking ---------------------------------------------


def deliveries_mark_tracked(*, delivery_ids: Iterable[int]) -> int:
    """Note that these sent messages carried tracking. One UPDATE, in the caller's
    transaction (dispatch records a batch's outcomes in one)."""
    ids = list(delivery_ids)
    return Delivery.objects.filter(pk__in=ids).update(tracked=True) if ids else 0


# --- Recording what the endpoints see ---------------------------------------------------


def link_target(*, delivery_id: int, number: int) -> str | None:
    """Where link ``number`` of this delivery's campaign goes, or None if there is no such link."""
    row = Delivery.objects.filter(pk=delivery_id).values_list("campaign__body_format", "campaign__body")
    found = row.first()
    if found is None or number < 1:
        return None
    links = _body_links(*found, _own_pages())
    return links[number - 1] if number <= len(links) else None


@transaction.atomic
def delivery_record_open(*, delivery_id: int) -> bool:
    """Note that this message was opened, once. True if noted now."""
    return _record(delivery_id, events.OPENED, f"open:{delivery_id}", "")


@transaction.atomic
def delivery_record_click(*, delivery_id: int, number: int) -> bool:
    """Note that link ``number`` of this message was clicked, once per link. True if noted now."""
    return _record(delivery_id, events.CLICKED, f"click:{delivery_id}:{number}", f"link {number}")


def _record(delivery_id: int, event_type: str, key: str, description: str) -> bool:
    """Through the provider events' own service, so one event is stored and processed once.

    Only for a message that carried tracking, to a subscriber whose consent to it still
    holds now: withdrawn since, nothing is noted. No IP address, user agent or address.
    """
    sent = Delivery.objects.filter(pk=delivery_id, tracked=True)
    found = sent.values_list("campaign_id", "subscriber_id").first()
    if found is None:
        return False
    campaign_id, subscriber_id = found
    if not trackable_subscriber_ids(subscriber_ids=[subscriber_id]):
        return False
    _row, created = provider_events.delivery_record_event(
        event=events.ProviderEvent(
            esp_name=ESP_NAME,
            event_type=event_type,
            reject_reason="",
            bounce="",
            event_id=key,
            message_id="",
            recipient="",
            occurred_at=timezone.now(),
            description=description,
            mta_response="",
            delivery_id=delivery_id,
            campaign_id=campaign_id,
            dedupe_key=events.dedupe_key(esp_name=ESP_NAME, provider_id=key),
        )
    )
    return created
