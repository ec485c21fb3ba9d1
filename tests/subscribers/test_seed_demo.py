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


def test_seed_demo_refuses_without_debug(settings):
    from django.core.management.base import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("seed_demo")
