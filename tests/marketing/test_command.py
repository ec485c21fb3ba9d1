"""``manage.py campaign``: the same services as the admin, audited, with readable errors."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from marketing import services
from marketing.models import Campaign, CampaignAction, Delivery
from tests.factories import StaffFactory, staff_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(seeded):
    return staff_in("Marketers", username="mia")


@pytest.fixture
def draft(consent_texts):
    return services.campaign_create(
        actor=None,
        name="November news",
        purpose=consent_texts["newsletter"].purpose,
        subject="News for {{ first_name }}",
        body="Hello **{{ first_name }}**!",
        first_name_fallback="there",
    )


@pytest.fixture
def sending(draft, audience, django_capture_on_commit_callbacks):
    """Started, but its workers never run: the test holds ``on_commit`` back."""
    services.campaign_send(campaign_id=draft.pk, actor=None)
    return draft


def campaign(*args: object) -> str:
    out = StringIO()
    call_command("campaign", *[str(a) for a in args], stdout=out)
    return out.getvalue()


def trail(campaign):
    return list(
        CampaignAction.objects.filter(campaign=campaign).order_by("id").values_list("action", "actor_label")
    )


def test_list_shows_every_campaign(draft):
    out = campaign("list")
    assert "November news" in out and "draft" in out and "0/0" in out


def test_preview_prints_html_or_text_for_a_sample_recipient(draft):
    html = campaign("preview", draft.pk)
    assert "Hello <strong>Alex</strong>!" in html
    assert "https://example.invalid/sample-unsubscribe-link" in html
    text = campaign("preview", draft.pk, "--text")
    assert text.startswith("Subject: News for Alex\n")
    assert "Hello **Alex**!" in text and "<strong>" not in text


def test_test_sends_one_message_and_records_who(draft, marketer, mailoutbox):
    out = campaign("test", draft.pk, "boss@example.com", "--user", "mia")
    assert f"Test of campaign {draft.pk} sent to boss@example.com." in out
    (message,) = mailoutbox
    assert message.to == ["boss@example.com"]
    assert message.subject == "[Test] News for Alex"
    assert message.alternatives[0][1] == "text/html"
    assert trail(draft)[-1] == ("test", "mia")


def test_send_reaches_exactly_the_eligible_and_is_audited(draft, audience, marketer, mailoutbox):
    mailoutbox.clear()  # the audience's confirmation emails
    out = campaign("send", draft.pk, "--user", "mia")
    assert f"Campaign {draft.pk} is sending to 5 eligible recipients." in out
    assert sorted(m.to[0] for m in mailoutbox) == sorted(s.email for s in audience.eligible)
    assert set(Delivery.objects.filter(campaign=draft).values_list("subscriber_id", flat=True)) == {
        s.pk for s in audience.eligible
    }
    assert ("send", "mia") in trail(draft)
    status = campaign("status", draft.pk)
    assert "Status:     Sent" in status
    assert "Sent:       5" in status and "Queued:     0" in status


def test_send_at_schedules_it(draft, marketer):
    at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    out = campaign("send", draft.pk, "--at", at.isoformat(), "--user", "mia")
    assert "scheduled for" in out
    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (Campaign.Status.SCHEDULED, at)
    assert trail(draft)[-1] == ("schedule", "mia")


def test_status_before_sending_shows_the_breakdown(draft, audience):
    out = campaign("status", draft.pk)
    assert "Status:     Draft" in out
    assert "eligible:     5" in out
    assert "no consent:   2" in out
    assert "suppressed:   1" in out
    assert "unconfirmed:  1" in out


def test_pause_resume_cancel(sending, marketer):
    assert "paused" in campaign("pause", sending.pk, "--reason", "Wrong link", "--user", "mia")
    sending.refresh_from_db()
    assert (sending.status, sending.paused_reason) == (Campaign.Status.PAUSED, "Wrong link")
    assert "(Wrong link)" in campaign("status", sending.pk)
    assert "resumed" in campaign("resume", sending.pk, "--user", "mia")
    assert "5 queued messages will not be sent" in campaign("cancel", sending.pk, "--user", "mia")
    assert trail(sending)[-3:] == [("pause", "mia"), ("resume", "mia"), ("cancel", "mia")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("status", 999999), "No campaign with id 999999"),
        (("pause", "{id}", "--user", "mia"), "Only a sending campaign can be paused."),
        (("resume", "{id}", "--user", "mia"), "Only a paused campaign can be resumed."),
        (("send", "{id}", "--at", "tomorrow", "--user", "mia"), "is not an ISO 8601 date and time"),
        (("send", "{id}", "--at", "2000-01-01T00:00", "--user", "mia"), "--at is in the past"),
        (("send", "{id}", "--user", "ghost"), "No user 'ghost'."),
    ],
)
def test_errors_are_readable_command_errors(draft, marketer, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        campaign(*[str(a).format(id=draft.pk) for a in args])
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.DRAFT
    assert trail(draft) == [("create", "system")]


def test_a_sent_campaign_cannot_be_sent_again(sending, marketer):
    with pytest.raises(CommandError, match=r"\(sending\): A sending campaign cannot be started."):
        campaign("send", sending.pk, "--user", "mia")
    assert Delivery.objects.filter(campaign=sending).count() == 5


def test_an_unknown_command_is_refused():
    with pytest.raises(CommandError):
        campaign("explode", 1)


@pytest.mark.parametrize(
    ("args", "does"),
    [
        (("test", "{id}", "boss@example.com"), "sends mail"),
        (("send", "{id}"), "starts or schedules sending"),
        (("send", "{id}", "--at", "2030-01-31T09:00"), "starts or schedules sending"),
        (("pause", "{id}", "--reason", "Wrong link"), "pauses the campaign"),
        (("resume", "{id}"), "resumes sending"),
        (("cancel", "{id}"), "cancels the campaign"),
    ],
)
def test_acting_without_user_is_refused_and_changes_nothing(sending, args, does, mailoutbox):
    """Without --user the trail would say "system", as if the scheduler had acted."""
    before = trail(sending)
    mailoutbox.clear()
    with pytest.raises(CommandError) as refused:
        campaign(*[str(a).format(id=sending.pk) for a in args])
    assert str(refused.value) == (
        f"`campaign {args[0]}` {does}: give --user USERNAME, the staff user the audit trail names "
        '(without it the action would be recorded as "system").'
    )
    sending.refresh_from_db()
    assert (sending.status, trail(sending), mailoutbox) == (Campaign.Status.SENDING, before, [])


def test_reading_needs_no_user(sending):
    assert str(sending.pk) in campaign("list")
    assert "Hello" in campaign("preview", sending.pk)
    assert "Status:     Sending" in campaign("status", sending.pk)


@pytest.mark.parametrize(
    "who",
    [
        {"username": "viewer"},  # staff, but not allowed to change campaigns
        {"username": "gone", "is_active": False, "group": "Marketers"},
        {"username": "outsider", "is_staff": False, "group": "Marketers"},
    ],
)
def test_only_someone_the_admin_would_let_act_may_act(sending, who, mailoutbox):
    group = who.pop("group", None)
    user = staff_in(group, **who) if group else StaffFactory(**who)
    before = trail(sending)
    with pytest.raises(CommandError, match="may not pause campaigns"):
        campaign("pause", sending.pk, "--user", user.username)
    sending.refresh_from_db()
    assert (sending.status, trail(sending)) == (Campaign.Status.SENDING, before)
