"""Open and click tracking, only with permission: tokens, rewriting, the two endpoints, what
they record (and when they record nothing), and campaigns that can never target tracking."""

from __future__ import annotations

import dataclasses
import json
import pkgutil
import re
from datetime import timedelta
from html import unescape

import anymail.backends
import pytest
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.management import CommandError, call_command
from django.urls import resolve, reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from marketing import rendering, services, tracking, views
from marketing.models import Campaign, Delivery, DeliveryEvent, Layout
from subscribers import links, tokens
from subscribers import services as subscriber_services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, Purpose, Subscriber
from tests.e2e.mailgun_server import serve
from tests.factories import staff_in
from tests.marketing.conftest import WEB, sign_up

pytestmark = pytest.mark.django_db

SITE = "https://news.example.com"
BODY = (
    "# Hello {{ first_name }}\n\n"
    "Read [the article](https://example.com/a?x=1&y=2) and [the other](https://example.org/b).\n\n"
    "Again: [the article](https://example.com/a?x=1&y=2). Mail [us](mailto:hi@example.com), "
    "[top](#top), [you](https://example.com/for/{{ first_name }}).\n"
)
ARTICLE, OTHER = "https://example.com/a?x=1&y=2", "https://example.org/b"
STAFF = Evidence(source=ConsentEvent.Source.ADMIN, actor=ConsentEvent.Actor.STAFF, actor_label="carl")
PIXEL_TAG = re.compile(r'<img src="%%TRACKING_URL%%/open\.gif"[^>]*>')


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = SITE
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def tracking_purpose(consent_texts) -> Purpose:
    return consent_texts["email-tracking"].purpose


@pytest.fixture
def campaign(consent_texts) -> Campaign:
    layout = Layout.objects.create(name="Brand", header_html='<a href="https://example.net/home">Home</a>')
    return services.campaign_create(
        actor=None,
        name="March",
        purpose=consent_texts["newsletter"].purpose,
        layout=layout,
        subject="News",
        body=BODY,
    )


@pytest.fixture
def sent(campaign, consent_texts, tracking_purpose):
    """The campaign sent to three readers; two agreed to tracking and got tracked messages."""
    news, track = consent_texts["newsletter"], consent_texts["email-tracking"]
    readers = {
        "ada": sign_up("ada@example.org", news, track),
        "bob": sign_up("bob@example.org", news, track),
        "cy": sign_up("cy@example.org", news),
    }
    services.campaign_send(campaign_id=campaign.pk, actor=None)  # runs eagerly
    deliveries = {k: Delivery.objects.get(campaign=campaign, subscriber=s) for k, s in readers.items()}
    assert {d.status for d in deliveries.values()} == {Delivery.Status.SENT}
    # Dispatch noted which messages carried tracking.
    assert {k: d.tracked for k, d in deliveries.items()} == {"ada": True, "bob": True, "cy": False}
    return deliveries


def base_of(delivery: Delivery) -> str:
    return tracking.url_maker()(delivery.pk)


def open_url(delivery: Delivery) -> str:
    return base_of(delivery).removeprefix(SITE) + tracking.OPEN_SUFFIX


def click_url(delivery: Delivery, number: int | str) -> str:
    return f"{base_of(delivery).removeprefix(SITE)}/{number}/"


def recorded(delivery: Delivery, kind: str) -> list[DeliveryEvent]:
    return list(DeliveryEvent.objects.filter(delivery=delivery, event_type=kind).order_by("pk"))


# --- Tokens -----------------------------------------------------------------------------


def test_a_token_names_its_delivery_and_nothing_else_reads_it():
    token = tracking.make_token(123_456)
    assert tracking.read_token(token) == 123_456
    assert len(token) < 60
    assert tracking.read_token(tracking.make_token(123_457)) != 123_456


@pytest.mark.parametrize(
    "altered",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t[: len(t) // 2],
        lambda t: t.split(":")[0],  # the id alone
        lambda t: "2" + t[1:] if t[0] != "2" else "3" + t[1:],  # another delivery, same signature
        lambda t: t.split(":")[0] + ":" + "A" * 43,  # forged signature
        lambda t: t + "x",
        lambda t: "",
        lambda t: t * 3,  # too long to be ours
    ],
)
def test_altered_truncated_or_forged_tokens_are_refused(altered):
    assert tracking.read_token(altered(tracking.make_token(1234))) is None


def test_other_links_tokens_are_not_tracking_tokens_nor_the_reverse():
    others = [
        links.make("unsubscribe", 1234, 1),
        links.make("preferences", 1234, generation=1),
        tokens.confirmation_token("6f1c2f7e-31a5-4b44-9d57-2b8e2c9c1f00"),
        tokens.email_change_token("6f1c2f7e-31a5-4b44-9d57-2b8e2c9c1f00"),
    ]
    assert [tracking.read_token(t) for t in others] == [None] * 4
    ours = tracking.make_token(1234)
    assert links.read("unsubscribe", ours) is None
    assert links.read("preferences", ours) is None
    assert tokens.confirmation_request_id(ours) is None


def test_rotating_the_secret_key_keeps_sent_tokens_working(settings):
    settings.SECRET_KEY = "old-key-" + "x" * 50
    sent = tracking.make_token(77)
    settings.SECRET_KEY = "new-key-" + "y" * 50
    settings.SECRET_KEY_FALLBACKS = ["old-key-" + "x" * 50]
    assert tracking.read_token(sent) == 77
    assert tracking.read_token(tracking.make_token(77)) == 77
    settings.SECRET_KEY_FALLBACKS = []
    assert tracking.read_token(sent) is None


@hypothesis_settings(deadline=None, max_examples=200)
@given(st.text(max_size=120))
def test_any_text_is_answered_without_raising(text):
    assert tracking.read_token(text) is None


# --- Which links, and rewriting ---------------------------------------------------------


def test_the_campaign_links_are_the_bodys_own_http_links_each_once(campaign):
    # Personalised addresses, mailto: and anchors are not links we could number.
    assert tracking.campaign_links(campaign) == [ARTICLE, OTHER]
    html_campaign = Campaign(
        body_format=Campaign.BodyFormat.HTML,
        body="<p><A HREF='https://x.example/1'>x</A> <a href=\"HTTPS://y.example/2\">y</a> "
        '<a href="ftp://z.example/">z</a> <a href="javascript:alert(1)">j</a> '
        f'<a href="{SITE}/u/abc/">our unsubscribe</a> <a href="{SITE}/preferences/abc/">ours</a></p>',
    )
    assert tracking.campaign_links(html_campaign) == ["https://x.example/1", "HTTPS://y.example/2"]


def test_rewrite_numbers_each_link_adds_the_pixel_and_keeps_everything_else():
    html = (
        "<html><body>\n<p>Hi <a class='x' href=\"https://a.example/?p=1&amp;q=2\">A</a>\n"
        '<a href="https://b.example/">B</a> <a href="https://a.example/?p=1&amp;q=2">A again</a>\n'
        '<a href="mailto:x@example.com">mail</a> <a href="#top">top</a> <a href="/relative">rel</a>\n'
        '<a href="%%UNSUBSCRIBE_URL%%">unsubscribe</a> <a href="%%PREFERENCES_URL%%">prefs</a>\n'
        "</p></body></html>"
    )
    out, found = tracking.rewrite(html)
    assert found == ["https://a.example/?p=1&q=2", "https://b.example/"]
    assert re.findall(r'href="([^"]*)"', out) == [
        "%%TRACKING_URL%%/1/",
        "%%TRACKING_URL%%/2/",
        "%%TRACKING_URL%%/1/",
        "mailto:x@example.com",
        "#top",
        "/relative",
        "%%UNSUBSCRIBE_URL%%",
        "%%PREFERENCES_URL%%",
    ]
    assert "<a class='x' href=\"%%TRACKING_URL%%/1/\">A</a>" in out
    assert out.count('src="%%TRACKING_URL%%/open.gif"') == 1
    assert re.search(r'<img src="%%TRACKING_URL%%/open\.gif" width="1" height="1" alt=""[^>]*></body>', out)
    # Put the addresses back and drop the pixel: the document is exactly what it was.
    restored = PIXEL_TAG.sub("", out)
    restored = restored.replace('"%%TRACKING_URL%%/1/"', '"https://a.example/?p=1&amp;q=2"')
    restored = restored.replace('"%%TRACKING_URL%%/2/"', '"https://b.example/"')
    assert restored == html


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<A HREF=https://a.example/>x</A>", '<A HREF="%%TRACKING_URL%%/1/">x</A>'),
        (
            "<a\n  title='see href=1'\r\n  href='https://a.example/'>x</a>",
            "<a\n  title='see href=1'\r\n  href=\"%%TRACKING_URL%%/1/\">x</a>",
        ),
        (
            '<a data-href="https://no.example/" href="https://a.example/">x</a>',
            '<a data-href="https://no.example/" href="%%TRACKING_URL%%/1/">x</a>',
        ),
        (  # the first href is the one a browser follows
            '<a href="https://a.example/" href="https://second.example/">x</a>',
            '<a href="%%TRACKING_URL%%/1/" href="https://second.example/">x</a>',
        ),
        ('<a href = "  https://a.example/  ">x</a>', '<a href = "%%TRACKING_URL%%/1/">x</a>'),
        ("<a href=https://a.example/ />", '<a href="%%TRACKING_URL%%/1/" />'),
        (
            '<p>Grüße 😀\n<b>bold</b></p>\n\n  <a href="https://a.example/">x',  # never closed
            '<p>Grüße 😀\n<b>bold</b></p>\n\n  <a href="%%TRACKING_URL%%/1/">x',
        ),
        (
            '<a href="">e</a><a href>n</a><a name="x">n</a><a href="https://a.example/">x</a>',
            '<a href="">e</a><a href>n</a><a name="x">n</a><a href="%%TRACKING_URL%%/1/">x</a>',
        ),
    ],
)
def test_rewrite_reads_odd_html_as_a_browser_would(html, expected):
    out, found = tracking.rewrite(html)
    assert found == ["https://a.example/"]
    # No </body>: the pixel goes at the very end.
    assert PIXEL_TAG.search(out).end() == len(out)
    assert PIXEL_TAG.sub("", out) == expected


def test_rewrite_leaves_comments_scripts_and_styles_alone():
    html = (
        '<!--[if mso]><a href="https://mso.example/">x</a><![endif]-->'
        "<script>var s = '<a href=\"https://script.example/\">';</script>"
        '<style>a[href="https://style.example/"] {}</style>'
        '<a href="https://a.example/">a</a></BODY>'
    )
    out, found = tracking.rewrite(html)
    assert found == ["https://a.example/"]
    assert "https://mso.example/" in out and "https://script.example/" in out and "style.example" in out
    assert out.endswith("</BODY>")


def test_with_only_the_campaigns_links_the_layouts_stay_as_they_are():
    html = '<a href="https://layout.example/">logo</a><a href="https://b.example/">b</a><a href="https://a.example/">a</a>'
    out, found = tracking.rewrite(html, only=["https://a.example/", "https://b.example/"])
    assert found == ["https://a.example/", "https://b.example/"]
    assert re.findall(r'href="([^"]*)"', out) == [
        "https://layout.example/",
        "%%TRACKING_URL%%/2/",
        "%%TRACKING_URL%%/1/",
    ]


def test_the_text_part_gets_the_same_numbers():
    text = (
        "Read [the article](https://example.com/a\\(1\\)) or <https://example.org/b>, "
        '[titled](https://example.org/b "T"), not [this](https://example.org/bb).\n'
    )
    out = tracking.rewrite_text(text, ["https://example.com/a(1)", "https://example.org/b"])
    assert out == (
        "Read [the article](%%TRACKING_URL%%/1/) or <%%TRACKING_URL%%/2/>, "
        '[titled](%%TRACKING_URL%%/2/ "T"), not [this](https://example.org/bb).\n'
    )
    assert tracking.rewrite_text(text, []) == text


def test_the_tracked_copy_tracks_body_links_only_and_leaves_the_plain_one_alone(campaign):
    prepared = rendering.prepare(campaign)
    copy = tracking.tracked_copy(prepared, campaign)
    hrefs = [unescape(h) for h in re.findall(r'href="([^"]*)"', copy.html)]
    assert hrefs.count("%%TRACKING_URL%%/1/") == 2 and hrefs.count("%%TRACKING_URL%%/2/") == 1
    assert "https://example.net/home" in hrefs  # the layout's own link
    assert "mailto:hi@example.com" in hrefs and "#top" in hrefs
    assert "https://example.com/for/%%FIRST_NAME%%" in hrefs
    assert rendering.UNSUBSCRIBE_URL in hrefs and rendering.PREFERENCES_URL in hrefs
    assert copy.html.count("/open.gif") == 1
    assert "](%%TRACKING_URL%%/1/)" in copy.text and "](%%TRACKING_URL%%/2/)" in copy.text
    assert ARTICLE not in copy.text
    # Everyone else's copy: no pixel, no rewritten link.
    assert tracking.PLACEHOLDER not in prepared.html + prepared.text
    assert ARTICLE.replace("&", "&amp;") in prepared.html


def test_a_recipients_urls_lead_to_the_two_endpoints(sent):
    make = tracking.url_maker()
    ids = (1, 62, 10**12)
    assert [make(n) for n in ids] == [f"{SITE}/t/{tracking.make_token(n)}" for n in ids]
    base = make(sent["ada"].pk)
    opened = resolve(base.removeprefix(SITE) + tracking.OPEN_SUFFIX)
    clicked = resolve(tracking.link_url(base, 2).removeprefix(SITE))
    assert (opened.func, clicked.func) == (views.open_pixel, views.click)
    assert clicked.kwargs["number"] == "2"
    assert tracking.read_token(clicked.kwargs["token"]) == sent["ada"].pk


def test_filled_in_a_tracked_message_leads_where_the_marketer_linked(client, campaign, sent):
    """The wiring the dispatch will do: the tracked copy, the recipient's base filled in."""
    delivery = sent["ada"]
    copy = tracking.tracked_copy(rendering.prepare(campaign), campaign)
    base = base_of(delivery)
    mine = dataclasses.replace(copy, html=copy.html.replace(tracking.PLACEHOLDER, base))
    ada = rendering.Recipient(
        subscriber_id=delivery.subscriber_id, email="ada@example.org", name="Ada", consented_at=None
    )
    message = rendering.build_message(mine, ada)
    html = next(c for c, m in message.alternatives if m == "text/html")
    targets = []
    for href in re.findall(r'href="([^"]*)"', html):
        if unescape(href).startswith(base):
            response = client.get(unescape(href).removeprefix(SITE))
            assert response.status_code == 302
            targets.append(response["Location"])
    assert targets == [ARTICLE, OTHER, ARTICLE]
    pixel = re.search(r'<img src="([^"]+)"', html)
    assert pixel and client.get(pixel.group(1).removeprefix(SITE))["Content-Type"] == "image/gif"
    assert len(recorded(delivery, "opened")) == 1 and len(recorded(delivery, "clicked")) == 2


# --- The open pixel ---------------------------------------------------------------------


def test_an_open_is_recorded_once_and_minimally(client, sent):
    ada = sent["ada"]
    for _ in range(3):
        response = client.get(open_url(ada), REMOTE_ADDR="198.51.100.9", HTTP_USER_AGENT="Mail/1.0")
        assert response.status_code == 200
        assert (response["Content-Type"], response.content) == ("image/gif", views.PIXEL)
        assert response.cookies == {} and "Set-Cookie" not in response
    [event] = recorded(ada, "opened")
    assert (event.esp_name, event.campaign_id, event.matched, event.outcome) == (
        "platform",
        ada.campaign_id,
        True,
        "recorded",
    )
    assert event.metadata == {"delivery_id": ada.pk, "campaign_id": ada.campaign_id}
    stored = json.dumps([getattr(event, f.attname) for f in DeliveryEvent._meta.fields], default=str)
    assert "198.51.100.9" not in stored and "Mail/1.0" not in stored and "ada@" not in stored
    assert (event.recipient_hash, event.recipient_domain) == ("", "")
    assert recorded(sent["bob"], "opened") == []


def test_no_open_is_noted_without_consent_or_for_an_untracked_message(client, sent, tracking_purpose):
    cy = sent["cy"]  # never agreed; the message carried no tracking
    assert client.get(open_url(cy)).content == views.PIXEL
    # Agreeing later does not make an untracked message trackable.
    subscriber_services.consent_opt_in(
        subscriber=cy.subscriber,
        purpose=tracking_purpose,
        channel=Channel.EMAIL,
        consent_text_id=tracking_purpose.texts.get().pk,
        evidence=WEB,
    )
    client.get(open_url(cy))
    # Withdrawn since sending: nothing is noted any more.
    bob = sent["bob"]
    subscriber_services.consent_withdraw(
        subscriber=bob.subscriber, purpose=tracking_purpose, channel=Channel.EMAIL, evidence=WEB
    )
    assert client.get(open_url(bob)).content == views.PIXEL
    assert DeliveryEvent.objects.count() == 0


def test_the_pixel_answers_an_image_to_anything(client, sent):
    ada = sent["ada"]
    token = tracking.make_token(ada.pk)
    for url in (f"/t/{token[:-2]}/open.gif", "/t/x/open.gif", f"/t/{'z' * 500}/open.gif"):
        response = client.get(url)
        assert (response.status_code, response.content) == (200, views.PIXEL)
    nobody = tracking.make_token(99_999_999)  # a valid token for no delivery
    assert client.get(f"/t/{nobody}/open.gif").content == views.PIXEL
    # A POST (no CSRF token) or a HEAD still gets the image, and notes nothing.
    assert client.post(open_url(ada)).content == views.PIXEL
    assert client.head(open_url(ada)).status_code == 200
    assert DeliveryEvent.objects.count() == 0


# --- The click redirect -----------------------------------------------------------------


def test_a_click_redirects_to_that_link_and_is_recorded_once_per_link(client, sent):
    ada = sent["ada"]
    for number, target in ((1, ARTICLE), (2, OTHER), (1, ARTICLE)):
        response = client.get(click_url(ada, number))
        assert (response.status_code, response["Location"]) == (302, target)
        assert response["Referrer-Policy"] == "no-referrer"
        assert response.cookies == {}
    clicks = recorded(ada, "clicked")
    assert [c.description for c in clicks] == ["link 1", "link 2"]
    assert {(c.matched, c.campaign_id, c.esp_name) for c in clicks} == {(True, ada.campaign_id, "platform")}


def test_a_click_after_withdrawing_still_leads_there_and_notes_nothing(client, sent, tracking_purpose):
    bob = sent["bob"]
    subscriber_services.consent_withdraw(
        subscriber=bob.subscriber, purpose=tracking_purpose, channel=Channel.EMAIL, evidence=WEB
    )
    response = client.get(click_url(bob, 2))
    assert (response.status_code, response["Location"]) == (302, OTHER)
    # An erased subscriber's old email still works as a link, and notes nothing either.
    ada = sent["ada"]
    erased = Subscriber.objects.get(pk=ada.subscriber_id)
    subscriber_services.subscriber_erase(subscriber=erased, evidence=STAFF)
    assert client.get(click_url(ada, 1))["Location"] == ARTICLE
    assert DeliveryEvent.objects.count() == 0


# The last is an Arabic-Indic one: a digit to str.isdigit, not a link number.
@pytest.mark.parametrize("number", ["0", "3", "99", "100000", "-1", "abc", "1.0", "\u0661"])
def test_an_unknown_link_number_gets_a_friendly_page(client, sent, number):
    response = client.get(click_url(sent["ada"], number))
    assert response.status_code == 404
    assert "We couldn't follow this link" in response.content.decode()
    assert DeliveryEvent.objects.count() == 0


def test_an_altered_or_cut_short_link_gets_a_friendly_page(client, sent):
    token = tracking.make_token(sent["ada"].pk)
    nobody = tracking.make_token(99_999_999)
    for url in (f"/t/{token[:-1]}/1/", f"/t/{token}/", "/t/anything/1/", f"/t/{nobody}/1/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Open the email again and click the link there" in response.content.decode()
    assert client.post(click_url(sent["ada"], 1)).status_code == 405
    assert DeliveryEvent.objects.count() == 0


def test_there_is_no_way_to_redirect_anywhere_but_the_campaigns_own_links(client, sent, consent_texts):
    """No parameter names a target; another campaign's numbers lead to this campaign's links."""
    other = services.campaign_create(
        actor=None,
        name="Other",
        purpose=consent_texts["newsletter"].purpose,
        subject="S",
        body="[evil](https://evil.example/)",
    )
    assert tracking.campaign_links(other) == ["https://evil.example/"]
    ada = sent["ada"]
    response = client.get(click_url(ada, 1) + "?next=https://evil.example/&url=https://evil.example/")
    assert response["Location"] == ARTICLE
    assert {client.get(click_url(ada, n))["Location"] for n in (1, 2)} == {ARTICLE, OTHER}


def test_a_head_request_redirects_without_noting_a_click(client, sent):
    response = client.head(click_url(sent["ada"], 1))
    assert (response.status_code, response["Location"]) == (302, ARTICLE)
    assert DeliveryEvent.objects.count() == 0


# --- Marking sends, and the provider's own tracking -------------------------------------


def test_marking_sends_tracked_touches_only_those(sent):
    assert tracking.deliveries_mark_tracked(delivery_ids=[]) == 0
    assert {k: d.tracked for k, d in ((k, Delivery.objects.get(pk=d.pk)) for k, d in sent.items())} == {
        "ada": True,
        "bob": True,
        "cy": False,
    }


MAILGUN = "anymail.backends.mailgun.EmailBackend"


def test_the_provider_is_told_not_to_track_anything():
    helped = tracking.disable_provider_tracking(
        EmailMultiAlternatives("S", "B", to=["a@example.org"]), backend=MAILGUN
    )
    plain = EmailMultiAlternatives("S", "B", to=["b@example.org"])  # settings.ANYMAIL's defaults
    for server in serve(api_key="key-test", domain="mg.example.com"):
        connection = get_connection(
            MAILGUN, api_key="key-test", sender_domain="mg.example.com", api_url=server.api_url
        )
        for message in (helped, plain):
            message.connection = connection
            message.send()
        assert len(server.calls) == 2
        for call in server.calls:
            assert (call.get("o:tracking-opens"), call.get("o:tracking-clicks")) == ("no", "no")


def test_providers_without_the_option_are_not_given_it(settings):
    """anymail refuses track_opens where the provider has no such option: sending would fail."""
    for backend in (
        "anymail.backends.brevo.EmailBackend",
        "anymail.backends.postal.EmailBackend",
        "django.core.mail.backends.smtp.EmailBackend",
    ):
        message = tracking.disable_provider_tracking(EmailMultiAlternatives("S", "B"), backend=backend)
        assert not hasattr(message, "track_opens") and not hasattr(message, "track_clicks")
    # The settings switch it off for exactly the providers that take it.
    taking = set()
    for module in pkgutil.iter_modules(anymail.backends.__path__):
        path = f"anymail.backends.{module.name}.EmailBackend"
        try:
            esp_name = import_string(path).esp_name
        except ImportError:
            continue  # a base module, or a provider whose client library is not installed
        if esp_name != "Test" and tracking.takes_tracking_options(path):
            taking.add(esp_name.upper().replace(" ", "_"))
    defaults = {
        name.removesuffix("_SEND_DEFAULTS"): value
        for name, value in settings.ANYMAIL.items()
        if name.endswith("SEND_DEFAULTS")
    }
    assert set(defaults) == taking and "MAILGUN" in taking and "POSTAL" not in taking
    assert all(value == {"track_opens": False, "track_clicks": False} for value in defaults.values())


# --- Campaigns can never target tracking -------------------------------------------------


def test_no_campaign_can_be_created_or_moved_onto_the_tracking_purpose(campaign, tracking_purpose):
    with pytest.raises(services.CampaignPurposeError, match="consent to noting opens and clicks"):
        services.campaign_create(actor=None, name="x", purpose=tracking_purpose, subject="s", body="b")
    with pytest.raises(services.CampaignPurposeError):
        services.campaign_update(campaign_id=campaign.pk, actor=None, purpose=tracking_purpose)
    assert Campaign.objects.get(pk=campaign.pk).purpose.slug == "newsletter"
    assert not Campaign.objects.filter(purpose=tracking_purpose).exists()


def test_one_made_before_the_rule_is_never_sent(consent_texts, tracking_purpose, mailoutbox):
    staff_in("Marketers", username="mia")
    sign_up("ada@example.org", consent_texts["newsletter"], consent_texts["email-tracking"])
    mailoutbox.clear()  # the confirmation
    legacy = Campaign.objects.create(name="Old", purpose=tracking_purpose, subject="s", body="b")
    with pytest.raises(services.CampaignPurposeError):
        services.campaign_send(campaign_id=legacy.pk, actor=None)
    refusal = r"Campaign \d+ \(draft\): “Help us improve our emails” is consent"
    with pytest.raises(CommandError, match=refusal):
        call_command("campaign", "send", str(legacy.pk), "--user", "mia")
    with pytest.raises(CommandError, match="no campaign can be sent for it"):
        call_command("campaign", "test", str(legacy.pk), "me@example.com", "--user", "mia")
    with pytest.raises(services.CampaignPurposeError):
        services.campaign_schedule(campaign_id=legacy.pk, actor=None, at=timezone.now() + timedelta(days=1))
    assert (Delivery.objects.count(), len(mailoutbox)) == (0, 0)
    assert Campaign.objects.get(pk=legacy.pk).status == Campaign.Status.DRAFT


def test_the_admin_offers_only_kinds_of_mail(admin_client, tracking_purpose, consent_texts):
    html = admin_client.get(reverse("admin:marketing_campaign_add")).content.decode()
    options = re.findall(r'<option value="(\d+)"', html.split('name="purpose"')[1].split("</select>")[0])
    assert str(tracking_purpose.pk) not in options
    assert str(consent_texts["newsletter"].purpose.pk) in options
    response = admin_client.post(
        reverse("admin:marketing_campaign_add"),
        {"name": "x", "purpose": tracking_purpose.pk, "subject": "s", "body": "b", "body_format": "markdown"},
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Campaign.objects.exists()
    preview = admin_client.post(
        reverse("admin:marketing_campaign_live_preview"), {"purpose": tracking_purpose.pk, "body": "b"}
    )
    assert "Select a valid choice" in preview.json()["error"]
