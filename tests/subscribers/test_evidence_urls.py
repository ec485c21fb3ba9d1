"""Evidence names the page a person acted on, never the key of the link that opened it."""

from __future__ import annotations

import pytest

from subscribers import links, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://news.example.com/preferences/1a.2:xyz:Sig-_/",
            "https://news.example.com/preferences/<token>/",
        ),
        (
            "https://news.example.com/preferences/1a.2:x:s/my-data/?a=1",
            "https://news.example.com/preferences/<token>/my-data/",
        ),
        ("http://testserver/u/1a.b:c:d/", "http://testserver/u/<token>/"),
        ("https://news.example.com/?ref=spring", "https://news.example.com/?ref=spring"),
        ("https://elsewhere.example/some/page/", "https://elsewhere.example/some/page/"),
        ("", ""),
    ],
)
def test_a_link_page_loses_its_token_and_other_pages_keep_their_address(url, shown):
    assert links.page_without_token(url) == shown


def test_a_proof_shows_evidence_recorded_with_a_token_without_it(consent_texts):
    """Evidence recorded before tokens were left out still holds one: proofs don't show it."""
    token = "1a.2:livekey:Signature-that-works_"
    evidence = Evidence(
        source=ConsentEvent.Source.PREFERENCE_CENTRE,
        ip_address="198.51.100.9",
        page_url=f"https://news.example.com/preferences/{token}/",
    )
    outcome = services.subscriber_sign_up(
        email="ada@example.org",
        name="Ada",
        choices=[services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.EMAIL)],
        evidence=evidence,
    )
    proof = selectors.consent_proof(subscriber=outcome.subscriber)
    assert token not in str(proof)
    assert "https://news.example.com/preferences/<token>/" in str(proof)
    stored = ConsentEvent.objects.filter(subscriber=outcome.subscriber).first().evidence
    assert stored.page_url.endswith(f"{token}/")  # the ledger itself is never rewritten
