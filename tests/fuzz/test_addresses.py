"""Internationalised addresses, decided one way everywhere: a Unicode domain is kept as typed
and sent as IDNA 2008; a non-ASCII local part is refused with a clear message."""

from __future__ import annotations

import idna
import pytest
from django.core.cache import cache
from hypothesis import assume, given
from hypothesis import strategies as st

from subscribers import links
from subscribers.addresses import smtp_address
from subscribers.forms import normalise_email
from subscribers.models import Subscriber
from subscribers.services import address_hash
from tests.fuzz.mail import TRANSACTIONAL_HEADERS, assert_headers_clean
from tests.fuzz.records import changed, snapshot

pytestmark = pytest.mark.django_db

REFUSAL = "addresses with accented or non-Latin letters before the @"
# Letters where IDNA 2003 and 2008 part ways (ß, ς, ZWJ-free scripts) and ordinary ones.
label = st.text(alphabet="abcdeßςäöüçñéøåæœλπжяあア例中", min_size=1, max_size=12)
unicode_local = st.text(alphabet="abcäöüßñéжя例", min_size=1, max_size=10).filter(lambda s: not s.isascii())


def idn_domain(first: str) -> str | None:
    domain = f"{first}.example"
    try:
        idna.encode(domain, uts46=True)
    except idna.IDNAError:
        return None
    return domain


@given(first=label)
def test_a_confirmation_goes_to_the_idn_domain_typed_not_its_idna2003_twin(
    client, consent_texts, mailoutbox, first
):
    domain = idn_domain(first)
    assume(domain is not None and not domain.isascii())
    cache.clear()
    mailoutbox.clear()
    address = f"reader{Subscriber.objects.count()}@{domain}"
    response = client.post("/", {"email": address, f"consent_{consent_texts['newsletter'].pk}_email": "on"})
    assert response.status_code == 302
    (message,) = mailoutbox
    to = message.to[0]
    assert_headers_clean(message, to=to, allowed=TRANSACTIONAL_HEADERS)
    sent_domain = to.rpartition("@")[2]
    assert sent_domain.isascii()
    # Decoding what went on the wire gives back the domain as stored, ß and ς included.
    stored = Subscriber.objects.get(email=normalise_email(address)).email.rpartition("@")[2]
    assert idna.decode(sent_domain) == stored


@given(local=unicode_local)
def test_a_non_ascii_local_part_is_refused_clearly_everywhere(client, consent_texts, mailoutbox, local):
    cache.clear()
    mailoutbox.clear()
    address = f"{local}@example.org"
    subscriber = Subscriber.objects.create(email="ada@example.org")
    token = links.make("preferences", subscriber.pk, generation=subscriber.link_generation)
    before = snapshot()

    signup = client.post("/", {"email": address, f"consent_{consent_texts['newsletter'].pk}_email": "on"})
    manage = client.post("/manage/", {"email": address})
    change = client.post(f"/preferences/{token}/", {"action": "email", "new_email": address})

    for response in (signup, manage, change):
        assert response.status_code == 400
        assert REFUSAL in response.content.decode()
    assert changed(before) == []
    assert mailoutbox == []
    subscriber.delete()


@given(local=st.from_regex(r"\A[a-z0-9.+_-]{1,20}\Z"), domain=st.text(min_size=1, max_size=30) | label)
def test_the_wire_address_decodes_back_to_the_stored_one_or_is_left_as_stored(local, domain):
    stored = f"{local}@{domain}"
    wire = smtp_address(stored)
    if wire == stored:
        return  # ASCII already, or a domain IDNA 2008 refuses: left for Django (IDNA 2003)
    wire_local, _at, wire_domain = wire.rpartition("@")
    assert wire_local == local
    assert wire_domain.isascii()
    assert idna.decode(wire_domain) == idna.decode(idna.encode(domain, uts46=True))


@given(first=label, local=st.sampled_from(["ada", "Ada.Lovelace+news", "x"]))
def test_an_address_and_the_ascii_form_we_send_to_have_one_hash(first, local):
    """A bounce or complaint names the address as sent (``xn--`` domain): same keyed hash."""
    domain = idn_domain(first)
    assume(domain is not None)
    stored = normalise_email(f"{local}@{domain}")
    sent = smtp_address(stored)
    assert address_hash(sent) == address_hash(stored)
    assert address_hash(sent.upper()) == address_hash(stored)


def test_a_malformed_ascii_label_is_hashed_as_given():
    assert address_hash("ada@xn--.example") == address_hash(" ADA@xn--.example ")
    assert address_hash("ada@xn--.example") != address_hash("ada@example")
