"""``seed_demo --subscribers N``: set-based demo subscribers whose ledger is the real thing."""

import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction

from marketing.models import Campaign, Delivery
from marketing.services import campaign_create, campaign_send
from subscribers import bulk, ledger, services
from subscribers.bulk import seed_subscribers
from subscribers.models import ConsentEvent, ConsentEvidence, ConsentState, Purpose, Subscriber
from subscribers.selectors import sendable_consents

pytestmark = pytest.mark.django_db(transaction=True)


def test_bulk_subscribers_have_confirmed_consent_and_a_ledger_that_verifies(consent_texts):
    result = seed_subscribers(count=25, chunk_size=10)

    demo = Subscriber.objects.filter(email__startswith="demo-")
    assert result.subscribers == demo.count() == 25
    mailings = {slug for slug, text in consent_texts.items() if not text.purpose.is_tracking}
    assert len(mailings) == 3 and len(consent_texts) == 4
    # Asked for and confirmed every kind of mail, by email; never asked about tracking.
    for subscriber in demo:
        events = ConsentEvent.objects.filter(subscriber=subscriber).order_by("seq")
        assert [(e.purpose.slug, e.kind) for e in events] == [
            (slug, kind) for kind in ("requested", "confirmed") for slug in sorted(mailings, key=_position)
        ]
        states = ConsentState.objects.filter(subscriber=subscriber)
        assert {(c.purpose.slug, c.channel, c.status) for c in states} == {
            (slug, "email", "active") for slug in mailings
        }
    assert ConsentEvent.objects.filter(subscriber__in=demo).count() == result.events == 25 * 3 * 2
    assert ConsentEvidence.objects.filter(event__subscriber__in=demo).count() == result.evidence
    assert ConsentState.objects.filter(subscriber__in=demo).count() == result.states == 25 * 3
    tracking = consent_texts["email-tracking"].purpose
    assert not ConsentEvent.objects.filter(subscriber__in=demo, purpose=tracking).exists()
    # The database computed the same hashes the Python ledger would: the chains verify.
    assert list(ledger.verify()) == []
    first = demo.order_by("id").first()
    assert first is not None and first.email == "demo-000000001@example.net"
    assert first.email_hash == services.address_hash(first.email)
    for slug in mailings:
        purpose_id = consent_texts[slug].purpose_id
        assert sendable_consents(purpose_id=purpose_id).filter(subscriber__in=demo).count() == 25


def _position(slug: str) -> tuple[int, int]:
    purpose = Purpose.objects.get(slug=slug)
    return purpose.position, purpose.pk


def test_seeding_again_adds_more_and_a_real_signup_still_chains_after_them(settings, consent_texts, tmp_path):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", "--subscribers", "7", "--chunk-size", "3")
    call_command("seed_demo", "--subscribers", "5")

    emails = sorted(Subscriber.objects.filter(email__startswith="demo-").values_list("email", flat=True))
    assert len(emails) == 12
    assert emails[-1] == "demo-000000012@example.net"
    # Ordinary services append to a bulk subscriber's chain without breaking it.
    subscriber = Subscriber.objects.get(email=emails[0])
    text = consent_texts["newsletter"]
    services.consent_withdraw(
        subscriber=subscriber,
        purpose=text.purpose,
        channel="email",
        evidence=ledger.Evidence(source=ConsentEvent.Source.ADMIN),
    )
    assert list(ledger.verify()) == []

    # A campaign snapshot picks the bulk subscribers up like any other.
    campaign = campaign_create(actor=None, purpose=text.purpose, subject="Hello", body="Hi", name="bulk")
    campaign_send(campaign_id=campaign.pk, actor=None)
    campaign.refresh_from_db()
    assert campaign.status in (Campaign.Status.SENDING, Campaign.Status.SENT)
    assert Delivery.objects.filter(campaign=campaign, subscriber__email__startswith="demo-").count() == 11


def test_every_event_gets_its_own_salt(consent_texts):
    seed_subscribers(count=4, chunk_size=3)

    salts = list(
        ConsentEvidence.objects.filter(event__subscriber__email__startswith="demo-").values_list(
            "salt", flat=True
        )
    )
    assert len(salts) == 4 * (len(consent_texts) - 1) * 2 == len(set(salts))  # not tracking
    assert all(len(salt) == 32 and int(salt, 16) >= 0 for salt in salts)


postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL set-based path")


@postgresql_only
def test_inside_a_callers_transaction_the_triggers_and_settings_come_back(consent_texts):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        (before,) = cursor.fetchone()
        seed_subscribers(count=5, chunk_size=2)
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone() == (before,)
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
        # The append-only trigger still guards the rest of the caller's transaction.
        event_id = ConsentEvent.objects.filter(subscriber__email__startswith="demo-").values_list(
            "id", flat=True
        )[0]
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("UPDATE subscribers_consentevent SET kind = kind WHERE id = %s", [event_id])
    assert list(ledger.verify()) == []


@postgresql_only
def test_an_insert_trigger_keeps_the_foreign_key_checks_on(consent_texts):
    with connection.cursor() as cursor:
        if not bulk._may_skip_foreign_key_checks(cursor):
            pytest.skip("this role may not set session_replication_role")
        cursor.execute(
            "CREATE FUNCTION test_seed_noop() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER test_seed_audit AFTER INSERT ON subscribers_consentstate "
            "FOR EACH ROW EXECUTE FUNCTION test_seed_noop()"
        )
        try:
            assert not bulk._may_skip_foreign_key_checks(cursor)
            seed_subscribers(count=3)
        finally:
            cursor.execute("DROP TRIGGER test_seed_audit ON subscribers_consentstate")
            cursor.execute("DROP FUNCTION test_seed_noop()")
    assert list(ledger.verify()) == []


def _catalogue() -> set[tuple[str, str]]:
    """Every index and constraint of the seeded tables, by name and definition."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'subscribers_%%'"
            )
            return set(cursor.fetchall())
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY(%s::regclass[]) UNION SELECT conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conrelid = ANY(%s::regclass[])",
            [bulk._SEEDED_TABLES] * 2,
        )
        return set(cursor.fetchall())


def test_seeding_many_or_few_leaves_every_index_and_constraint_as_it_was(consent_texts):
    before = _catalogue()
    names = {name for name, _ in before}
    assert "consent_state_lookup_idx" in names
    assert connection.vendor == "sqlite" or "consent_event_hash_unique" in names

    seed_subscribers(count=40, chunk_size=15)  # many next to the 0 there: indexes dropped, rebuilt
    assert _catalogue() == before
    seed_subscribers(count=3)  # few next to the 40: rows go into the indexes as they are
    assert _catalogue() == before
    assert Subscriber.objects.filter(email__startswith="demo-").count() == 43
    assert list(ledger.verify()) == []


def test_a_duplicate_address_aborts_the_whole_seeding(consent_texts):
    seed_subscribers(count=2)
    # Not matched as a demo address (the numbering reads lower-case "demo-"), yet it is the same
    # address as the next one to be seeded: the unique index, rebuilt or not, must refuse it.
    Subscriber.objects.create(email="DEMO-000000004@example.net")
    before = _catalogue()

    with pytest.raises(IntegrityError):
        seed_subscribers(count=5)

    assert Subscriber.objects.count() == 3
    assert ConsentEvent.objects.count() == 2 * 3 * 2
    assert _catalogue() == before
    assert list(ledger.verify()) == []
