"""Every signed link under hostile tokens: altered, truncated, made for another purpose or
scope, for someone else, or replayed. A clear 4xx page (the open pixel: its GIF), and no
record changed; a valid link changes its own subscriber's records and nobody else's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from marketing import tracking
from marketing.models import Delivery
from subscribers import links, selectors, services, tokens
from subscribers.models import ConfirmationRequest, ConsentEvent, Subscriber
from tests.fuzz import strategies as hs
from tests.fuzz.records import changed, snapshot
from tests.marketing.conftest import WEB

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent_campaign")]

# Each view with a signed token: its URL and the kind of token it takes.
VIEWS = {
    "confirm": ("/confirm/{}/", "confirm"),
    "unsubscribe": ("/u/{}/", "unsubscribe"),
    "preferences": ("/preferences/{}/", "preferences"),
    "email_change": ("/email-change/{}/", "email_change"),
    "my_data": ("/preferences/{}/my-data/", "preferences"),
    "delete_me": ("/preferences/{}/delete/", "preferences"),
    "open": ("/t/{}/open.gif", "tracking"),
    "click": ("/t/{}/1/", "tracking"),
}
# What a mail client, a scanner or an attacker may POST to any of them.
BODIES = [
    {},
    {"List-Unsubscribe": "One-Click"},
    {"confirm": "1", "everything": "1", "reason": "bye"},
    {"undo": "1", "withdrawal": ["1", "2", "3"]},
    {"action": "consent", "purpose": "1", "channel": "email", "enabled": "0"},
    {"action": "pause", "months": "6"},
    {"action": "email", "new_email": "attacker@example.net"},
]


@dataclass
class Tokens:
    """Valid tokens of every kind, for one subscriber (``owner``)."""

    owner: Subscriber
    by_kind: dict[str, str]


def tokens_for(subscriber: Subscriber, purpose_id: int) -> Tokens:
    request = ConfirmationRequest.objects.filter(subscriber=subscriber).order_by("-created_at").first()
    change = services.email_change_request(
        subscriber=subscriber, new_email=f"new.{subscriber.email}", evidence=WEB
    )
    delivery = Delivery.objects.filter(subscriber=subscriber).first()
    return Tokens(
        owner=subscriber,
        by_kind={
            # Someone who signed up long ago may have none left: a well-made token for nothing.
            "confirm": tokens.confirmation_token(request.pk if request else uuid.uuid4()),
            "unsubscribe": links.make("unsubscribe", subscriber.pk, purpose_id),
            "preferences": selectors.preferences_token(subscriber),
            "email_change": tokens.email_change_token(change.pk),
            # Someone never mailed has no delivery: a well-made token for a delivery that isn't.
            "tracking": tracking.make_token(delivery.pk if delivery else 10**9),
        },
    )


@pytest.fixture
def ada(audience, consent_texts) -> Tokens:
    return tokens_for(audience.eligible[0], consent_texts["newsletter"].purpose_id)


def request(client, method: str, url: str, body: dict, **headers: str):
    if method == "GET":
        return client.get(url, **headers)
    return client.post(url, body, **headers)


def assert_refused(response, view: str) -> None:
    if view == "open" and response.status_code == 200:  # an image in an email: the GIF, noting nothing
        assert response["Content-Type"] == "image/gif"
    else:  # a URL no route matches (an empty token, one with a slash) is a 404 too
        assert 400 <= response.status_code < 500, response.status_code


@given(data=st.data(), view=st.sampled_from(list(VIEWS)), method=st.sampled_from(["GET", "POST"]))
def test_an_altered_token_is_refused_and_changes_nothing(client, ada, data, view, method):
    url, kind = VIEWS[view]
    token = data.draw(hs.altered(ada.by_kind[kind]), label="token")
    body = data.draw(st.sampled_from(BODIES), label="body")
    before = snapshot()
    response = request(client, method, url.format(quote(token, safe="")), body)
    assert_refused(response, view)
    assert changed(before) == []


@given(
    view=st.sampled_from(list(VIEWS)),
    kind=st.sampled_from(["confirm", "unsubscribe", "preferences", "email_change", "tracking"]),
    method=st.sampled_from(["GET", "POST"]),
    body=st.sampled_from(BODIES),
)
def test_a_token_of_another_kind_is_refused_and_changes_nothing(client, ada, view, kind, method, body):
    url, wanted = VIEWS[view]
    if kind == wanted:
        return
    before = snapshot()
    response = request(client, method, url.format(ada.by_kind[kind]), body)
    assert_refused(response, view)
    assert changed(before) == []


@given(
    subscriber_id=st.integers(min_value=1, max_value=2**63),
    purpose_id=st.integers(min_value=1, max_value=2**63),
    generation=st.integers(min_value=1, max_value=2**63),
    view=st.sampled_from(["unsubscribe", "preferences", "my_data", "delete_me"]),
    body=st.sampled_from(BODIES),
)
def test_a_genuine_token_for_nobody_we_know_is_refused(
    client, audience, view, subscriber_id, purpose_id, generation, body
):
    known = set(Subscriber.objects.values_list("pk", flat=True))
    url, kind = VIEWS[view]
    if kind == "unsubscribe":
        token = links.make("unsubscribe", subscriber_id, purpose_id)
        stale = subscriber_id in known and purpose_id < 100
    else:
        token = links.make("preferences", subscriber_id, generation=generation)
        stale = subscriber_id in known and generation == 1
    if stale:
        return  # a real, valid link
    before = snapshot()
    response = request(client, "POST", url.format(token), body)
    assert_refused(response, view)
    assert changed(before) == []


@given(
    view=st.sampled_from(["unsubscribe", "preferences", "email_change", "delete_me"]),
    body=st.sampled_from(BODIES),
    who=st.integers(0, 4),
)
def test_a_valid_link_changes_its_own_subscriber_only(client, audience, consent_texts, view, body, who):
    subscriber = Subscriber.objects.get(pk=audience.eligible[who].pk)
    if subscriber.email is None:
        return  # erased by an earlier example
    mine = tokens_for(subscriber, consent_texts["newsletter"].purpose_id)
    someone_else = [s.pk for s in audience.eligible if s.pk != subscriber.pk]
    before = _rows_of(someone_else)
    url, kind = VIEWS[view]
    response = request(client, "POST", url.format(mine.by_kind[kind]), body)
    assert response.status_code < 500
    assert _rows_of(someone_else) == before


def _rows_of(subscriber_ids: list[int]) -> tuple:
    subscribers = list(Subscriber.objects.filter(pk__in=subscriber_ids).order_by("pk").values())
    events = list(ConsentEvent.objects.filter(subscriber_id__in=subscriber_ids).order_by("pk").values())
    return subscribers, events


@given(view=st.sampled_from(["confirm", "email_change", "unsubscribe", "delete_me"]))
def test_a_replayed_token_changes_nothing_the_second_time(client, audience, consent_texts, view):
    pending = Subscriber.objects.get(pk=audience.pending.pk)
    if pending.email is None:
        return
    mine = tokens_for(pending, consent_texts["newsletter"].purpose_id)
    url, kind = VIEWS[view]
    body = {"List-Unsubscribe": "One-Click"} if view == "unsubscribe" else {}
    first = request(client, "POST", url.format(mine.by_kind[kind]), body)
    assert first.status_code < 400
    before = snapshot()
    again = request(client, "POST", url.format(mine.by_kind[kind]), body)
    assert again.status_code < 500
    if view == "delete_me":
        assert again.status_code == 400  # erasure revoked every link
    assert changed(before) == []


@given(reason=hs.hostile_text, user_agent=hs.hostile_text, forwarded=hs.hostile_text)
@example(reason="bye\x00", user_agent="Mail/1.0", forwarded="").via(
    "NUL in the reason: a 500 from PostgreSQL"
)
@example(reason="", user_agent="Mail\x00/1.0", forwarded="\x00").via("NUL in the User-Agent")
def test_unsubscribing_with_any_reason_and_headers_works_and_keeps_them_clean(
    client, audience, consent_texts, settings, reason, user_agent, forwarded
):
    settings.TRUSTED_PROXY_COUNT = 1
    subscriber = audience.eligible[1]
    url = VIEWS["unsubscribe"][0].format(
        links.make("unsubscribe", subscriber.pk, consent_texts["newsletter"].purpose_id)
    )
    response = client.post(
        url,
        {"confirm": "1", "reason": reason},
        HTTP_USER_AGENT=user_agent,
        HTTP_X_FORWARDED_FOR=forwarded,
    )
    assert response.status_code == 200
    event = (
        ConsentEvent.objects.filter(subscriber=subscriber).select_related("evidence").order_by("-seq").first()
    )
    assert event is not None
    kept = event.evidence
    for value in (kept.user_agent, str(kept.submitted), kept.page_url):
        assert "\x00" not in value


@given(user_agent=hs.hostile_text, body=st.sampled_from(BODIES[1:4]))
@example(user_agent="\x00", body=BODIES[1])
def test_one_click_with_any_user_agent_answers_and_withdraws(
    client, audience, consent_texts, user_agent, body
):
    subscriber = audience.eligible[2]
    url = VIEWS["unsubscribe"][0].format(
        links.make("unsubscribe", subscriber.pk, consent_texts["newsletter"].purpose_id)
    )
    response = client.post(url, body, HTTP_USER_AGENT=user_agent)
    assert response.status_code in (200, 400)
