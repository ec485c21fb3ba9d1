"""Campaign emails as the recipient's mail program gets them: both parts, footer, headers."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime

import pytest
from django.test.signals import template_rendered
from django.urls import reverse
from django.utils.html import escape

from marketing import rendering, smtp_frames
from marketing.models import Campaign, Layout
from subscribers import links
from subscribers.models import Purpose

pytestmark = pytest.mark.django_db

SITE = "https://news.example.com"
CONSENTED = datetime(2025, 3, 3, 10, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = SITE
    settings.SENDER_EMAIL = "news@mail.example.com"
    settings.DEFAULT_FROM_EMAIL = "Example Newsletter <news@mail.example.com>"
    settings.ORGANISATION_NAME = "Example Ltd"
    settings.ORGANISATION_ADDRESS = "PO Box 42\n1000 Example City"
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@mail.example.com"
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def campaign(consent_texts) -> Campaign:
    layout = Layout.objects.create(
        name="Brand",
        header_html='<span class="brand">Example News</span>',
        footer_html="<p>Thanks for reading.</p>",
        css=".brand { color: #0a7f3f; }\n.callout { color: #ff0000; }\nh1 { font-size: 40px; }",
    )
    return Campaign.objects.create(
        name="March",
        purpose=Purpose.objects.get(slug="newsletter"),
        layout=layout,
        subject="News for {{ first_name }}",
        preheader="Spring is here, {{ first_name }}",
        body=(
            "# Hello {{first_name}}\n\n"
            '<p class="callout">Big news.</p>\n\n'
            "Read [the article](https://example.com/a?x=1&y=2).\n\n"
            "- one\n- two\n"
        ),
        first_name_fallback="friend",
    )


def recipient(name: str = "Ada Lovelace", subscriber_id: int = 11, **extra) -> rendering.Recipient:
    fields = {"email": "ada@example.org", "consented_at": CONSENTED, **extra}
    return rendering.Recipient(subscriber_id=subscriber_id, name=name, **fields)


def parts(message) -> tuple[str, str]:
    html = next(content for content, mimetype in message.alternatives if mimetype == "text/html")
    return message.body, html


def parsed(message) -> email.message.EmailMessage:
    return email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)


def header(message, name: str) -> str:
    """A header's value as a receiver reads it: unfolded (RFC 5322 §2.2.3), outer space dropped."""
    values = parsed(message).get_all(name) or []
    assert len(values) == 1, (name, values)
    return " ".join(str(values[0]).split())


def token_in(url: str, prefix: str) -> str:
    found = re.fullmatch(rf"{re.escape(SITE)}/{prefix}/([^/]+)/", url)
    assert found, url
    return found.group(1)


def test_names_are_escaped_in_html_and_kept_as_typed_in_text(campaign):
    prepared = rendering.prepare(campaign)
    nasty = "<script>alert('x')</script>&\"Bob\""
    text, html = parts(rendering.build_message(prepared, recipient(name=f"{nasty} Jones")))
    assert nasty not in html
    assert "<script>" not in html
    assert re.search(r'<h1 style="[^"]*">Hello ' + re.escape(escape(nasty)) + "</h1>", html)
    assert escape(nasty) in html  # preheader and heading
    assert f"# Hello {nasty}" in text


def test_the_first_name_falls_back_when_there_is_no_name(campaign):
    prepared = rendering.prepare(campaign)
    message = rendering.build_message(prepared, recipient(name="   "))
    text, html = parts(message)
    assert "Hello friend" in html
    assert "# Hello friend" in text
    assert message.subject == "News for friend"


def test_first_name_is_the_first_word_of_the_name(campaign):
    message = rendering.build_message(rendering.prepare(campaign), recipient(name="Ada  Lovelace"))
    assert message.subject == "News for Ada"
    assert "# Hello Ada\n" in message.body


def test_both_parts_carry_the_legal_footer(campaign):
    message = rendering.build_message(rendering.prepare(campaign), recipient())
    text, html = parts(message)
    unsubscribe = re.search(rf"{re.escape(SITE)}/u/[^/\s)\"]+/", text).group(0)
    preferences = re.search(rf"{re.escape(SITE)}/preferences/[^/\s)\"]+/", text).group(0)
    for part in (text, html):
        assert "You receive this because you agreed to Newsletter emails on 3 March 2025." in part
        assert "Example Ltd" in part
        assert "PO Box 42" in part
        assert "1000 Example City" in part
        assert unsubscribe in part
        assert preferences in part
    assert f'href="{unsubscribe}"' in html
    assert f'href="{preferences}"' in html
    assert "Unsubscribe from Newsletter emails" in html
    assert "Thanks for reading." in html  # the layout's own footer, above the legal one
    assert "PO Box 42<br>1000 Example City" in html


def test_no_consent_date_leaves_a_whole_sentence(campaign):
    message = rendering.build_message(rendering.prepare(campaign), recipient(consented_at=None))
    assert "You receive this because you agreed to Newsletter emails." in message.body


def test_css_is_inlined_and_the_layout_wins(campaign):
    _text, html = parts(rendering.build_message(rendering.prepare(campaign), recipient()))
    assert re.search(r'<p class="callout" style="[^"]*color: ?#ff0000', html), html
    assert re.search(r'<span class="brand" style="[^"]*color: ?#0a7f3f', html)
    h1_style = re.search(r'<h1 style="([^"]*)"', html).group(1)
    assert "font-size: 40px" in h1_style
    assert "font-size: 26px" not in h1_style
    assert ".callout" not in html  # inlined, not left in a <style> block
    assert "@media" in html  # the phone-width rules stay in <style>
    assert "<link" not in html
    assert not re.search(r"""(src|href)=["']https?://(?!news\.example\.com|example\.com/a)""", html)


def test_markdown_is_rendered_and_html_is_used_as_is(campaign):
    _text, html = parts(rendering.build_message(rendering.prepare(campaign), recipient()))
    assert "<li>one</li>" in html
    assert 'href="https://example.com/a?x=1&amp;y=2"' in html
    campaign.body_format = Campaign.BodyFormat.HTML
    campaign.body = "<div class='raw'># not a heading, {{ first_name }}</div>"
    _text, html = parts(rendering.build_message(rendering.prepare(campaign), recipient()))
    assert "# not a heading, Ada</div>" in html
    assert "<h1" not in html.split("email-body", 1)[1]


def test_text_part_keeps_links_and_leaves_out_the_hidden_preheader(campaign):
    message = rendering.build_message(rendering.prepare(campaign), recipient())
    text, html = parts(message)
    assert "Spring is here, Ada" in html
    assert "display:none" in html
    assert "Spring is here" not in text
    assert "[the article](https://example.com/a?x=1&y=2)" in text
    assert "<" not in text


def test_without_a_layout_the_default_frame_is_used(campaign):
    campaign.layout = None
    text, html = parts(rendering.build_message(rendering.prepare(campaign), recipient()))
    assert "Example Ltd" in html.split("email-body", 1)[0]  # the header falls back to the name
    assert re.search(r'<h1 style="[^"]*font-size: 26px', html)
    assert "You receive this because" in text


def test_placeholders_survive_inlining_and_text_conversion(campaign):
    prepared = rendering.prepare(campaign)
    for placeholder in rendering.PLACEHOLDERS:
        assert placeholder in prepared.html, placeholder
        assert placeholder in prepared.text, placeholder
    assert rendering.FIRST_NAME in prepared.subject
    message = rendering.build_message(prepared, recipient())
    text, html = parts(message)
    for content in (text, html, message.subject):
        assert "%%" not in content


def test_a_name_that_looks_like_a_placeholder_is_not_expanded(campaign):
    message = rendering.build_message(rendering.prepare(campaign), recipient(name="%%UNSUBSCRIBE_URL%%"))
    text, html = parts(message)
    assert "# Hello %%UNSUBSCRIBE_URL%%" in text
    assert "Hello %%UNSUBSCRIBE_URL%%</h1>" in html


def test_headers_follow_rfc_8058_and_name_the_list(campaign):
    message = rendering.build_message(rendering.prepare(campaign), recipient())
    unsubscribe = re.search(rf"{re.escape(SITE)}/u/[^/\s)]+/", message.body).group(0)
    # RFC 8058 §3.1: one https URI (and a mailto), and the exact One-Click POST body.
    assert header(message, "List-Unsubscribe") == (
        f"<{unsubscribe}>, <mailto:unsubscribe@mail.example.com?subject=unsubscribe>"
    )
    assert header(message, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert header(message, "List-Id") == "Newsletter <newsletter.mail.example.com>"
    assert header(message, "From") == "Example Newsletter <news@mail.example.com>"
    assert header(message, "To") == "ada@example.org"
    assert header(message, "X-Campaign-Id") == str(campaign.pk)


def test_mailto_defaults_to_the_sender_address(campaign, settings):
    settings.UNSUBSCRIBE_MAILTO = ""
    message = rendering.build_message(rendering.prepare(campaign), recipient())
    assert header(message, "List-Unsubscribe").endswith(
        ", <mailto:news@mail.example.com?subject=unsubscribe>"
    )


def test_list_id_quotes_a_purpose_name_with_specials(campaign):
    purpose = campaign.purpose
    purpose.name = "News, tips & more"
    purpose.save()
    campaign.refresh_from_db()
    message = rendering.build_message(rendering.prepare(campaign), recipient())
    assert header(message, "List-Id") == '"News, tips & more" <newsletter.mail.example.com>'


def test_a_newline_in_the_subject_or_name_cannot_add_a_header(campaign):
    campaign.subject = "Hello {{ first_name }}\r\nBcc: victim@example.net\nX-Evil: 1"
    prepared = rendering.prepare(campaign)
    message = rendering.build_message(prepared, recipient(name="Ada\r\nCc: other@example.net"))
    raw = message.message().as_bytes()
    headers = email.message_from_bytes(raw, policy=email.policy.default)
    assert headers["Bcc"] is None
    assert headers["Cc"] is None
    assert headers["X-Evil"] is None
    assert str(headers["Subject"]) == "Hello Ada Bcc: victim@example.net X-Evil: 1"
    assert message.recipients() == ["ada@example.org"]
    assert b"\nBcc:" not in raw


def test_links_are_per_recipient_signed_and_read_back(campaign):
    prepared = rendering.prepare(campaign)
    first = rendering.build_message(prepared, recipient(subscriber_id=11))
    second = rendering.build_message(prepared, recipient(subscriber_id=12, email="bob@example.org"))
    urls = {}
    for message in (first, second):
        unsubscribe = re.search(rf"{re.escape(SITE)}/u/[^/\s)]+/", message.body).group(0)
        preferences = re.search(rf"{re.escape(SITE)}/preferences/[^/\s)]+/", message.body).group(0)
        urls[message.to[0]] = (unsubscribe, preferences)
    assert urls["ada@example.org"][0] != urls["bob@example.org"][0]
    assert urls["ada@example.org"][1] != urls["bob@example.org"][1]
    claims = links.read("unsubscribe", token_in(urls["bob@example.org"][0], "u"))
    assert claims is not None
    assert (claims.subscriber_id, claims.purpose_id) == (12, campaign.purpose_id)
    prefs = links.read("preferences", token_in(urls["ada@example.org"][1], "preferences"))
    assert prefs is not None
    assert (prefs.subscriber_id, prefs.purpose_id) == (11, None)
    # The header and the body carry the same link.
    assert header(second, "List-Unsubscribe").startswith(f"<{urls['bob@example.org'][0]}>")


def test_the_body_is_rendered_once_not_per_recipient(campaign):
    rendered = []

    def count(sender, **kwargs):
        rendered.append(kwargs["template"].name)

    template_rendered.connect(count)
    try:
        prepared = rendering.prepare(campaign)
        before = len(rendered)
        for n in range(5):
            rendering.build_message(prepared, recipient(subscriber_id=100 + n))
    finally:
        template_rendered.disconnect(count)
    assert before >= 1
    assert len(rendered) == before


def test_settings_are_read_when_called(campaign, settings):
    prepared = rendering.prepare(campaign)
    settings.SITE_URL = "https://other.example.net"
    settings.SENDER_EMAIL = "hello@other.example.net"
    message = rendering.build_message(prepared, recipient())
    assert header(message, "List-Unsubscribe").startswith("<https://other.example.net/u/")
    assert header(message, "List-Id") == "Newsletter <newsletter.other.example.net>"


def test_the_message_goes_out_with_both_parts(campaign, mailoutbox):
    rendering.build_message(rendering.prepare(campaign), recipient()).send()
    (sent,) = mailoutbox
    assert sent.subject == "News for Ada"
    assert sent.alternatives[0].mimetype == "text/html"
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


# --- SMTP: the frame built once, bytes per recipient ---------------------------------------

AWKWARD = [
    "Ada Lovelace",
    "Zoë Ünal",
    'Tom&<b>"Jerry"</b>=3D=',
    "X" * 120,  # one long word: the encoding must wrap it
    "",
    "%%UNSUBSCRIBE_URL%%",
    "=?utf-8?q?Eve?= trailing",
    "😀 emoji",
]
TOKENS = re.compile(r"/(u|preferences)/[^/\s\"<>]+/")


def as_received(raw: bytes) -> dict[str, str]:
    """What a mail program shows: the headers and both parts, per-recipient tokens masked
    (both builders sign in their own second)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    shown = {
        name: " ".join(str(message[name]).split())
        for name in (
            "Subject",
            "From",
            "To",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "List-Id",
            "X-Campaign-Id",
        )
    }
    for subtype in ("plain", "html"):
        part = message.get_body(preferencelist=(subtype,))
        assert part is not None, subtype
        shown[subtype] = str(part.get_content())
    # Line ends as text: CRLF on the wire either way (RFC 5322), as Python decodes each.
    return {key: TOKENS.sub(r"/\1/T/", value).replace("\r\n", "\n") for key, value in shown.items()}


@pytest.mark.parametrize("name", AWKWARD)
def test_the_smtp_frame_gives_every_recipient_what_the_mime_builder_gives(campaign, name):
    campaign.subject = "Grüße, {{ first_name }}: a long subject line that goes on " + "and on " * 12
    campaign.body += "\n\nA line far longer than seventy-six characters, with = signs, Grüße and 😀 " * 3
    campaign.body += "\n\nEnds with spaces before the name:   {{ first_name }}   \n"
    prepared = rendering.prepare(campaign)
    frame = smtp_frames.smtp_frame(prepared)
    ada = recipient(name=name, email="ada.l+news@example.org")
    raw = frame.message(ada, link_maker=rendering.LinkMaker(), message_id="<1@example.com>", date="x")
    assert raw is not None
    lines = raw.split(b"\r\n")
    assert b"\n" not in b"".join(lines) and raw.isascii()
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # RFC 2045 §6.7
    assert max(len(line) for line in lines) <= 998  # RFC 5322 §2.1.1
    built = rendering.build_message(prepared, ada).message().as_bytes()
    assert as_received(raw) == as_received(built)


def test_the_tracked_copy_through_the_frame_carries_the_recipients_tracking_url(campaign):
    from marketing import tracking

    tracked = tracking.tracked_copy(rendering.prepare(campaign), campaign)
    base = f"{SITE}/t/some-token"
    ada = recipient(tracking_url=base)
    raw = smtp_frames.smtp_frame(tracked).message(
        ada, link_maker=rendering.LinkMaker(), message_id="<1@example.com>", date="x"
    )
    assert raw is not None
    shown = as_received(raw)
    assert f'<img src="{base}/open.gif"' in shown["html"] and f'href="{base}/1/"' in shown["html"]
    assert f"]({base}/1/)" in shown["plain"]
    assert shown == as_received(rendering.build_message(tracked, ada).message().as_bytes())


def test_an_address_the_frame_cannot_write_as_is_goes_to_the_mime_builder(campaign):
    frame = smtp_frames.smtp_frame(rendering.prepare(campaign))
    for address in ("zoë@example.org", "a b@example.org", '"q"@example.org', "a@b@c"):
        assert (
            frame.message(
                recipient(email=address), link_maker=rendering.LinkMaker(), message_id="<1@x>", date="x"
            )
            is None
        )


def test_the_batch_link_maker_makes_the_links_reverse_and_links_make_make(campaign, monkeypatch):
    monkeypatch.setattr("django.core.signing.time.time", lambda: 1_750_000_000.5)
    make = rendering.LinkMaker()
    for subscriber_id, purpose_id, generation in ((11, 3, 4), (1, 1, 1), (10**12, 62, 99)):
        unsubscribe = make.unsubscribe(subscriber_id, purpose_id)
        token = links.make("unsubscribe", subscriber_id, purpose_id)
        assert unsubscribe == f"{SITE}{reverse('subscribers:unsubscribe', args=[token])}"
        claims = links.read("unsubscribe", token_in(unsubscribe, "u"), max_age=10**10)
        assert claims and (claims.subscriber_id, claims.purpose_id) == (subscriber_id, purpose_id)
        preferences = make.preferences(subscriber_id, generation)
        token = links.make("preferences", subscriber_id, generation=generation)
        assert preferences == f"{SITE}{reverse('subscribers:preferences', args=[token])}"
