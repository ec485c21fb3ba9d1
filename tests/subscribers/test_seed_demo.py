import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from subscribers import ledger
from subscribers.models import ConsentState, ConsentText, Subscriber

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_leaves_a_valid_ledger(settings, tmp_path, capsys):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out
    password = first.rsplit(":", 1)[1].strip()
    assert password and password in second
    assert get_user_model().objects.get(username="admin").check_password(password)
    # Three kinds of mail and consent to noting opens and clicks, each with its own text.
    assert ConsentText.objects.count() == 4
    tracking_text = ConsentText.objects.get(purpose__kind="tracking")
    assert "whether and when you first opened it" in tracking_text.data_collected
    assert "Switch it off" in tracking_text.withdrawal
    assert Subscriber.objects.count() == 3
    assert ConsentState.objects.filter(status="active").count() == 12
    assert list(ledger.verify()) == []


def test_seed_demo_adds_bulk_subscribers_after_the_demo_people_in_one_transaction(settings, tmp_path, capsys):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    # The test's transaction still holds the demo people's deferred foreign-key checks when
    # the bulk rows go in: seeding must work around them, not fail on them.
    call_command("seed_demo", "--subscribers", "6", "--chunk-size", "4")

    assert "Added 6 subscribers, 36 consent events, 36 evidence rows and 18 consent states" in (
        capsys.readouterr().out
    )
    bulk = Subscriber.objects.filter(email__startswith="demo-")
    assert bulk.count() == 6
    assert ConsentState.objects.filter(subscriber__in=bulk, status="active").count() == 6 * 3
    assert not ConsentState.objects.filter(subscriber__in=bulk, purpose__kind="tracking").exists()
    assert list(ledger.verify()) == []


def test_seed_demo_refuses_without_debug(settings):
    from django.core.management.base import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("seed_demo")
