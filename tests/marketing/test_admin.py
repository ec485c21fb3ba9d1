"""The campaign admin: compose, preview, test, send and watch, every step audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketing import services
from marketing.models import Campaign, CampaignAction, Delivery
from tests.factories import staff_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def groups(seeded):
    """The staff groups with their campaign permissions (``seeded`` restores them after a flush)."""


@pytest.fixture
def marketer(groups):
    return staff_in("Marketers", username="mia", first_name="Mia", last_name="Marketer")


@pytest.fixture
def compliance(groups):
    return staff_in("Compliance", username="carl")


@pytest.fixture
def nobody(groups):
    return staff_in(username="nemo")


@pytest.fixture
def newsletter(consent_texts):
    return consent_texts["newsletter"].purpose


@pytest.fixture
def draft(newsletter, marketer):
    return services.campaign_create(
        actor=marketer,
        name="November news",
        purpose=newsletter,
        subject="News for {{ first_name }}",
        body="Hello **{{ first_name }}**!",
    )


@pytest.fixture
def sending(draft, audience, django_capture_on_commit_callbacks):
    """A campaign that has started but whose workers have not run (its task is never queued)."""
    services.campaign_send(campaign_id=draft.pk, actor=None)
    draft.refresh_from_db()
    return draft


def form_data(purpose, **overrides):
    return {
        "name": "Spring sale",
        "purpose": purpose.pk,
        "subject": "Spring sale, {{ first_name }}",
        "preheader": "Ten days only",
        "layout": "",
        "body_format": "markdown",
        "body": "# Spring\n\nHello {{ first_name }}.",
        "first_name_fallback": "friend",
        **overrides,
    }


def change_url(campaign):
    return reverse("admin:marketing_campaign_change", args=[campaign.pk])


def action_url(campaign, action):
    return reverse("admin:marketing_campaign_action", args=[campaign.pk, action])


def trail(campaign):
    return list(
        CampaignAction.objects.filter(campaign=campaign).order_by("id").values_list("action", "actor_label")
    )


def messages_on(response):
    return [str(m) for m in response.context["messages"]]


def test_marketer_creates_a_campaign_through_the_service(client, marketer, newsletter):
    client.force_login(marketer)
    response = client.post(reverse("admin:marketing_campaign_add"), form_data(newsletter))
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get()
    assert (campaign.name, campaign.subject, campaign.first_name_fallback) == (
        "Spring sale",
        "Spring sale, {{ first_name }}",
        "friend",
    )
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.created_by == marketer
    action = CampaignAction.objects.get(campaign=campaign)
    assert (action.action, action.actor, action.actor_label) == ("create", marketer, "mia")
    assert response["Location"] == reverse("admin:marketing_campaign_changelist")
    assert LogEntry.objects.filter(object_id=str(campaign.pk), user=marketer).exists()


def test_editing_records_what_changed(client, marketer, draft, newsletter):
    client.force_login(marketer)
    data = form_data(
        newsletter, name=draft.name, subject="Fresh news", body=draft.body, first_name_fallback="there"
    )
    response = client.post(change_url(draft), data)
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.subject == "Fresh news"
    edit = CampaignAction.objects.filter(campaign=draft, action="edit").get()
    assert edit.actor == marketer
    assert edit.detail == {"fields": ["preheader", "subject"]}


def test_a_sending_campaign_is_read_only_and_says_why(client, marketer, sending, newsletter):
    client.force_login(marketer)
    page = client.get(change_url(sending))
    assert page.status_code == 200
    html = page.content.decode()
    assert "is <strong>sending</strong>: its content is" in html
    assert 'name="_save"' not in html
    response = client.post(change_url(sending), form_data(newsletter, subject="Changed"))
    assert response.status_code == 403
    sending.refresh_from_db()
    assert sending.subject == "News for {{ first_name }}"
    assert "edit" not in [action for action, _ in trail(sending)]


def test_send_test_mails_the_staff_user_both_parts_with_sample_links(client, marketer, draft, mailoutbox):
    client.force_login(marketer)
    response = client.post(action_url(draft, "test"), follow=True)
    assert messages_on(response) == ["Test sent to mia@example.com."]
    (message,) = mailoutbox
    assert message.to == ["mia@example.com"]
    assert message.subject == "[Test] News for Mia"
    assert "Hello **Mia**!" in message.body
    html = message.alternatives[0][0]
    assert message.alternatives[0][1] == "text/html"
    assert "<strong>Mia</strong>" in html
    assert "https://example.invalid/sample-unsubscribe-link" in html
    assert "https://example.invalid/sample-unsubscribe-link" in message.extra_headers["List-Unsubscribe"]
    action = CampaignAction.objects.get(campaign=draft, action="test")
    assert (action.actor, action.detail) == (marketer, {"to": "mia@example.com"})


def test_send_test_without_an_address_is_a_message_not_an_error(client, groups, draft, mailoutbox):
    user = staff_in("Marketers", username="noaddress", email="")
    client.force_login(user)
    response = client.post(action_url(draft, "test"), follow=True)
    assert response.status_code == 200
    assert "no email address" in messages_on(response)[0]
    assert mailoutbox == []
    assert not CampaignAction.objects.filter(action="test").exists()


def test_send_now_reaches_exactly_the_eligible_subscribers(client, marketer, draft, audience, mailoutbox):
    mailoutbox.clear()  # the audience's confirmation emails
    client.force_login(marketer)
    response = client.post(action_url(draft, "send"), follow=True)
    assert messages_on(response) == ["Sending started to 5 eligible recipients."]
    eligible = {s.pk for s in audience.eligible}
    assert set(Delivery.objects.filter(campaign=draft).values_list("subscriber_id", flat=True)) == eligible
    assert sorted(m.to[0] for m in mailoutbox) == sorted(s.email for s in audience.eligible)
    assert all(m.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in mailoutbox)
    assert ("send", "mia") in trail(draft)
    draft.refresh_from_db()
    assert (draft.status, draft.sent_count) == (Campaign.Status.SENT, 5)
    page = client.get(change_url(draft)).content.decode()
    assert "Results" in page and 'data-field="sent">5<' in page


def test_schedule_pause_resume_and_cancel_are_audited(
    client, marketer, draft, audience, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    at = timezone.localtime() + timedelta(days=1)
    response = client.post(action_url(draft, "schedule"), {"at": at.strftime("%Y-%m-%dT%H:%M")}, follow=True)
    assert messages_on(response)[0].startswith("Scheduled for ")
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.SCHEDULED
    assert draft.scheduled_at == at.replace(second=0, microsecond=0)

    client.post(action_url(draft, "send"))  # its workers never run: on_commit is held back
    client.post(action_url(draft, "pause"), {"reason": "Typo in the subject"})
    draft.refresh_from_db()
    assert (draft.status, draft.paused_reason) == (Campaign.Status.PAUSED, "Typo in the subject")
    client.post(action_url(draft, "resume"))
    response = client.post(action_url(draft, "cancel"), follow=True)
    assert messages_on(response)[-1] == "Cancelled; 5 queued messages will not be sent."
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.CANCELLED
    assert trail(draft) == [
        ("create", "mia"),
        ("schedule", "mia"),
        ("send", "mia"),
        ("pause", "mia"),
        ("resume", "mia"),
        ("cancel", "mia"),
    ]
    assert CampaignAction.objects.get(campaign=draft, action="pause").detail == {
        "reason": "Typo in the subject"
    }


def test_the_audit_trail_is_shown_read_only_on_the_page(client, marketer, draft):
    client.force_login(marketer)
    html = client.get(change_url(draft)).content.decode()
    assert "Audit trail" in html and "Created" in html
    assert 'name="actions-0-action"' not in html


@pytest.mark.parametrize(
    ("action", "data", "expected"),
    [
        ("resume", {}, "Only a paused campaign can be resumed."),
        ("pause", {}, "Only a sending campaign can be paused."),
        ("schedule", {"at": "not a date"}, "Give a date and time to schedule the campaign."),
        (
            "schedule",
            {"at": "2000-01-01T09:00"},
            "That time has passed: choose a later one, or use Send now.",
        ),
    ],
)
def test_a_refused_action_is_a_message_not_a_500(client, marketer, draft, action, data, expected):
    client.force_login(marketer)
    response = client.post(action_url(draft, action), data)
    assert response.status_code == 302
    assert response["Location"] == change_url(draft)
    assert messages_on(client.get(change_url(draft))) == [expected]
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.DRAFT


def test_a_second_send_is_refused_with_a_message(client, marketer, sending):
    client.force_login(marketer)
    response = client.post(action_url(sending, "send"), follow=True)
    assert messages_on(response) == ["A sending campaign cannot be started."]
    assert Delivery.objects.filter(campaign=sending).count() == 5


def test_actions_are_post_only(client, marketer, draft):
    client.force_login(marketer)
    assert client.get(action_url(draft, "send")).status_code == 405
    assert (
        client.post(reverse("admin:marketing_campaign_action", args=[draft.pk, "explode"])).status_code == 404
    )
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.DRAFT


def test_progress_json_reads_the_counters_not_the_deliveries(client, marketer, sending):
    Campaign.objects.filter(pk=sending.pk).update(sent_count=2, failed_count=1, skipped_count=1)
    client.force_login(marketer)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:marketing_campaign_progress", args=[sending.pk]))
    assert not [q for q in queries.captured_queries if "marketing_delivery" in q["sql"]]
    data = response.json()
    assert {
        k: data[k] for k in ("status", "recipients", "queued", "sent", "failed", "skipped", "percent")
    } == {
        "status": "sending",
        "recipients": 5,
        "queued": 1,
        "sent": 2,
        "failed": 1,
        "skipped": 1,
        "percent": 80,
    }
    page = client.get(change_url(sending)).content.decode()
    assert 'id="campaign-progress"' in page and "marketing/progress.js" in page


def test_the_change_page_shows_the_audience_breakdown_before_sending(client, marketer, draft, audience):
    client.force_login(marketer)
    html = client.get(change_url(draft)).content.decode()
    assert "<strong>5</strong> eligible" in html
    assert "<strong>2</strong> no consent for this purpose" in html
    assert "<strong>1</strong> suppressed" in html
    assert "<strong>1</strong> not yet confirmed" in html
    assert 'id="campaign-live-preview"' in html and "marketing/preview.js" in html


def test_live_preview_renders_the_form_as_typed_and_escapes_the_name(client, groups, newsletter):
    user = staff_in("Marketers", username="eve", first_name="<b>Eve</b>")
    client.force_login(user)
    data = form_data(newsletter, body="Hi {{ first_name }}, *welcome*.", subject="For {{ first_name }}")
    response = client.post(reverse("admin:marketing_campaign_live_preview"), data)
    preview = response.json()
    assert preview["error"] == ""
    assert "Hi &lt;b&gt;Eve&lt;/b&gt;, <em>welcome</em>." in preview["html"]
    assert "<b>Eve</b>" not in preview["html"]
    assert "Hi <b>Eve</b>, _welcome_." in preview["text"]  # plain text is not HTML: as typed
    assert preview["subject"] == "For <b>Eve</b>"
    assert "https://example.invalid/sample-preferences-link" in preview["html"]
    assert not Campaign.objects.exists()
    assert client.get(reverse("admin:marketing_campaign_live_preview")).status_code == 405
    missing = client.post(reverse("admin:marketing_campaign_live_preview"), {**data, "purpose": ""}).json()
    assert missing["error"] == "Choose a purpose to see the preview."


def test_preview_page_shows_desktop_phone_and_text_for_a_sample_recipient(client, groups, draft):
    client.force_login(staff_in("Marketers", username="anon", email=""))
    response = client.get(reverse("admin:marketing_campaign_preview", args=[draft.pk]))
    html = response.content.decode()
    assert response.context["recipient"] == "alex@example.com"
    assert html.count("<iframe") == 2 and 'width="375"' in html and 'width="640"' in html
    # The HTML sits escaped inside srcdoc: the email cannot break out of the attribute.
    assert 'srcdoc="&lt;!DOCTYPE html&gt;' in html or 'srcdoc="&lt;' in html
    assert "Hello &lt;strong&gt;Alex&lt;/strong&gt;!" in html
    assert "<pre>" in html and "Hello **Alex**!" in response.context["text"]


def test_compliance_sees_campaigns_but_cannot_act(client, compliance, draft, mailoutbox):
    client.force_login(compliance)
    page = client.get(change_url(draft))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Send now" not in html and 'name="_save"' not in html
    assert client.get(reverse("admin:marketing_campaign_progress", args=[draft.pk])).status_code == 200
    assert client.get(reverse("admin:marketing_campaign_preview", args=[draft.pk])).status_code == 200
    assert client.get(reverse("admin:marketing_delivery_changelist")).status_code == 200
    assert client.get(reverse("admin:marketing_campaignaction_changelist")).status_code == 200
    for action in ("test", "send", "pause", "cancel"):
        assert client.post(action_url(draft, action)).status_code == 403
    assert client.post(reverse("admin:marketing_campaign_add"), {}).status_code == 403
    assert client.post(reverse("admin:marketing_campaign_live_preview"), {}).status_code == 403
    assert trail(draft) == [("create", "mia")]
    assert mailoutbox == []


def test_staff_without_permissions_get_403_everywhere(client, nobody, draft):
    client.force_login(nobody)
    urls = [
        change_url(draft),
        reverse("admin:marketing_campaign_changelist"),
        reverse("admin:marketing_campaign_preview", args=[draft.pk]),
        reverse("admin:marketing_campaign_progress", args=[draft.pk]),
        reverse("admin:marketing_delivery_changelist"),
    ]
    for url in urls:
        assert client.get(url).status_code == 403, url
    assert client.post(action_url(draft, "send")).status_code == 403
    assert client.post(reverse("admin:marketing_campaign_live_preview"), {}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.DRAFT


def test_deliveries_and_the_audit_log_are_read_only(client, marketer, sending):
    client.force_login(marketer)
    delivery = Delivery.objects.filter(campaign=sending).first()
    assert (
        client.get(
            reverse("admin:marketing_delivery_changelist"), {"campaign__id__exact": sending.pk}
        ).status_code
        == 200
    )
    assert client.get(reverse("admin:marketing_delivery_add")).status_code == 403
    change = reverse("admin:marketing_delivery_change", args=[delivery.pk])
    assert client.post(change, {"status": "sent"}).status_code == 403
    assert (
        client.post(
            reverse("admin:marketing_delivery_delete", args=[delivery.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    action = CampaignAction.objects.filter(campaign=sending).first()
    assert (
        client.post(reverse("admin:marketing_campaignaction_change", args=[action.pk]), {}).status_code == 403
    )
    assert (
        client.post(
            reverse("admin:marketing_campaign_delete", args=[sending.pk]), {"post": "yes"}
        ).status_code
        == 403
    )


def test_progress_json_is_plain_json(client, marketer, draft):
    client.force_login(marketer)
    response = client.get(reverse("admin:marketing_campaign_progress", args=[draft.pk]))
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["status"] == "draft"


def test_a_layout_may_not_restyle_the_legal_footer(client, marketer):
    from marketing.models import Layout

    client.force_login(marketer)
    form = {"name": "Brand", "header_html": "", "footer_html": "", "css": ".email-legal { display: none }"}
    response = client.post(reverse("admin:marketing_layout_add"), form)
    assert response.status_code == 200
    assert "The legal footer (.email-legal) keeps its own style" in response.content.decode()
    assert not Layout.objects.exists()
    form["css"] = "h1 { color: #c00 }"
    assert client.post(reverse("admin:marketing_layout_add"), form).status_code == 302
    assert Layout.objects.get().css == "h1 { color: #c00 }"
