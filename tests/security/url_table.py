"""Who may reach which URL: one entry per URL name, for every role.

Adding a URL pattern? Add its name to ``TABLE`` (``test_every_url_is_in_the_table`` fails
until you do). Each entry says how to build the path for a role and what each role gets:

- ``OK``: the page, file or redirect the view means to give (2xx, or a 3xx not to the login).
- ``LOGIN``: a redirect to the admin sign-in.
- ``DENIED``: 403.
- ``REFUSED``: turned away without acting (400, 401, 404, 405, 410, 503): a forged link,
  a webhook without credentials, a method the view does not take.

``get`` is checked with GET; ``post``, where given, with an empty POST (never enough to
change anything: a permitted POST re-shows the form with its errors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from anymail import urls as anymail_urls
from django.urls import URLPattern

from tests.security.world import ROLES, STAFF_ROLES, World, forged

OK, LOGIN, DENIED, REFUSED = "ok", "login", "denied", "refused"

Expect = dict[str, str]
PathFor = Callable[[World, str], str]


@dataclass(frozen=True)
class Row:
    path: PathFor
    get: Expect
    post: Expect | None = None


def everyone(outcome: str) -> Expect:
    return dict.fromkeys(ROLES, outcome)


def staff(allowed: Iterable[str], *, otherwise: str = DENIED) -> Expect:
    """Admin pages: the roles in ``allowed`` get OK, other staff ``otherwise``, the rest the sign-in."""
    allowed = set(allowed)
    return {
        "anonymous": LOGIN,
        "subscriber": LOGIN,
        **{role: OK if role in allowed else otherwise for role in STAFF_ROLES},
    }


def subscriber_only(outcome_for_others: str = REFUSED) -> Expect:
    """A link's page: the subscriber holding it gets in; anyone else only has a forged copy."""
    return {role: OK if role == "subscriber" else outcome_for_others for role in ROLES}


def fixed(path: str) -> PathFor:
    return lambda world, role: path


def with_link(kind: str, template: str) -> PathFor:
    """``template`` with the link token: the real one for the subscriber, a forged one for others."""

    def build(world: World, role: str) -> str:
        token = world.token(kind)
        return template.format(token=token if role == "subscriber" else forged(token))

    return build


M, C, S = "marketer", "compliance", "superuser"
EVERY_STAFF = (M, C, S)


def model_admin(
    app: str,
    model: str,
    pk: Callable[[World], object],
    *,
    view: Iterable[str],
    add: Iterable[str] = (),
    change: Iterable[str] = (),
    delete: Iterable[str] = (),
) -> dict[str, Row]:
    """The five URLs Django's admin makes for a model, from who may view, add, change, delete."""
    view, change = set(view), set(change)
    base = f"/admin/{app}/{model}/"

    def obj(suffix: str) -> PathFor:
        return lambda world, role: f"{base}{pk(world)}/{suffix}"

    return {
        f"admin:{app}_{model}_changelist": Row(fixed(base), staff(view | change)),
        f"admin:{app}_{model}_add": Row(fixed(f"{base}add/"), staff(add), post=staff(add)),
        f"admin:{app}_{model}_change": Row(obj("change/"), staff(view | change), post=staff(change)),
        f"admin:{app}_{model}_delete": Row(obj("delete/"), staff(delete)),
        f"admin:{app}_{model}_history": Row(obj("history/"), staff(view | change)),
    }


def _webhooks() -> dict[str, Row]:
    # Every provider's tracking webhook: nobody gets in without the shared secret, staff included.
    rows = {}
    for pattern in anymail_urls.urlpatterns:
        if (
            isinstance(pattern, URLPattern)
            and pattern.name
            and (pattern.name.endswith("_tracking_webhook") or pattern.name == "mandrill_webhook")
        ):
            rows[f"anymail:{pattern.name}"] = Row(
                fixed(f"/anymail/{pattern.pattern}"), everyone(REFUSED), post=everyone(REFUSED)
            )
    return rows


TABLE: dict[str, Row] = {
    # --- Public pages --------------------------------------------------------------------
    "subscribers:signup": Row(fixed("/"), everyone(OK)),
    "subscribers:check_inbox": Row(fixed("/signup/check-your-inbox/"), everyone(OK)),
    "subscribers:erased": Row(fixed("/goodbye/"), everyone(OK)),
    "subscribers:manage": Row(fixed("/manage/"), everyone(OK)),
    "subscribers:manage_sent": Row(fixed("/manage/sent/"), everyone(OK)),
    # --- Links emailed to one subscriber: the token is the only credential --------------
    "subscribers:confirm": Row(with_link("confirm", "/confirm/{token}/"), subscriber_only()),
    "subscribers:unsubscribe": Row(with_link("unsubscribe", "/u/{token}/"), subscriber_only()),
    "subscribers:preferences": Row(with_link("preferences", "/preferences/{token}/"), subscriber_only()),
    "subscribers:email_change_confirm": Row(
        with_link("email_change", "/email-change/{token}/"), subscriber_only()
    ),
    "subscribers:my_data": Row(with_link("preferences", "/preferences/{token}/my-data/"), subscriber_only()),
    "subscribers:delete_me": Row(with_link("preferences", "/preferences/{token}/delete/"), subscriber_only()),
    # The open pixel answers an image to anything (noting nothing for a forged token).
    "marketing:open": Row(with_link("tracking", "/t/{token}/open.gif"), everyone(OK)),
    "marketing:click": Row(with_link("tracking", "/t/{token}/1/"), subscriber_only()),
    "marketing:click_incomplete": Row(with_link("tracking", "/t/{token}/"), everyone(REFUSED)),
    # --- Provider webhooks ---------------------------------------------------------------
    **_webhooks(),
    # --- The outbox: every email sent, with addresses and working links: Compliance only --
    "outbox": Row(fixed("/outbox/"), staff((C, S))),
    "outbox_message": Row(lambda world, role: f"/outbox/{world.outbox_name}/", staff((C, S))),
    # --- The admin site ------------------------------------------------------------------
    "admin:index": Row(fixed("/admin/"), staff(EVERY_STAFF)),
    "admin:login": Row(fixed("/admin/login/"), {**everyone(OK)}),
    # Django signs out on POST only; a GET is refused (and for a visitor, sent to the index).
    "admin:logout": Row(
        fixed("/admin/logout/"), {**staff((), otherwise=REFUSED), "anonymous": OK, "subscriber": OK}
    ),
    "admin:password_change": Row(fixed("/admin/password_change/"), staff(EVERY_STAFF)),
    "admin:password_change_done": Row(fixed("/admin/password_change/done/"), staff(EVERY_STAFF)),
    "admin:jsi18n": Row(fixed("/admin/jsi18n/"), staff(EVERY_STAFF)),
    # No admin model names an autocomplete field; without one every request is refused.
    "admin:autocomplete": Row(fixed("/admin/autocomplete/"), staff(())),
    # No model here has a page on the public site.
    "admin:view_on_site": Row(
        lambda world, role: f"/admin/r/1/{world.ada.pk}/", staff((), otherwise=REFUSED)
    ),
    "admin:app_list": Row(fixed("/admin/subscribers/"), staff(EVERY_STAFF)),
    # --- Subscribers: read-only for everyone; erasure, not deletion ---------------------
    **model_admin("subscribers", "subscriber", lambda w: w.ada.pk, view=EVERY_STAFF),
    # The ledger: nobody, superusers included, adds, changes or deletes an event.
    **model_admin("subscribers", "consentevent", lambda w: w.event.pk, view=EVERY_STAFF),
    # Evidence (IP addresses, user agents): Compliance only, read-only.
    **model_admin("subscribers", "consentevidence", lambda w: w.evidence.pk, view=(C, S)),
    **model_admin(
        "subscribers", "purpose", lambda w: w.text.purpose_id, view=(M,), add=(C, S), change=(C, S)
    ),
    # Saving a text publishes a new version; no text is ever deleted.
    **model_admin("subscribers", "consenttext", lambda w: w.text.pk, view=(M,), add=(C, S), change=(C, S)),
    **model_admin("subscribers", "suppression", lambda w: w.suppression.pk, view=EVERY_STAFF),
    # Personal-data views: proof of consent, the data download, erasure, unsubscribing on
    # request. Never Marketers.
    "admin:subscribers_subscriber_proof": Row(
        lambda w, r: f"/admin/subscribers/subscriber/{w.ada.pk}/proof/", staff((C, S))
    ),
    "admin:subscribers_subscriber_proof_json": Row(
        lambda w, r: f"/admin/subscribers/subscriber/{w.ada.pk}/proof.json", staff((C, S))
    ),
    "admin:subscribers_subscriber_data_json": Row(
        lambda w, r: f"/admin/subscribers/subscriber/{w.ada.pk}/data.json", staff((C, S))
    ),
    # GET shows the form (a POST would erase: the permission is checked before the method).
    "admin:subscribers_subscriber_erase": Row(
        lambda w, r: f"/admin/subscribers/subscriber/{w.ada.pk}/erase/", staff((C, S))
    ),
    # An empty POST re-shows the form: the request reference is required.
    "admin:subscribers_subscriber_unsubscribe": Row(
        lambda w, r: f"/admin/subscribers/subscriber/{w.ada.pk}/unsubscribe/",
        staff((C, S)),
        post=staff((C, S)),
    ),
    "admin:subscribers_suppression_lift": Row(
        lambda w, r: f"/admin/subscribers/suppression/{w.suppression.pk}/lift/",
        staff((C, S)),
        post=staff((C, S)),
    ),
    # --- Campaigns: Marketers compose and send; Compliance reads ------------------------
    **model_admin("marketing", "campaign", lambda w: w.campaign.pk, view=(C,), add=(M, S), change=(M, S)),
    **model_admin(
        "marketing", "layout", lambda w: w.layout.pk, view=(C,), add=(M, S), change=(M, S), delete=(S,)
    ),
    **model_admin("marketing", "delivery", lambda w: w.delivery.pk, view=EVERY_STAFF),
    **model_admin("marketing", "campaignaction", lambda w: w.campaign.actions.get().pk, view=EVERY_STAFF),
    **model_admin("marketing", "deliveryevent", lambda w: w.delivery_event.pk, view=EVERY_STAFF),
    "admin:marketing_campaign_preview": Row(
        lambda w, r: f"/admin/marketing/campaign/{w.campaign.pk}/preview/", staff(EVERY_STAFF)
    ),
    "admin:marketing_campaign_progress": Row(
        lambda w, r: f"/admin/marketing/campaign/{w.campaign.pk}/progress.json", staff(EVERY_STAFF)
    ),
    # POST only: a GET is refused; Compliance may not even try.
    "admin:marketing_campaign_live_preview": Row(
        fixed("/admin/marketing/campaign/preview/"),
        staff((), otherwise=REFUSED) | {C: DENIED},
        post=staff((M, S)),
    ),
    # Pausing a draft is refused with a message and a redirect back: nothing changes.
    "admin:marketing_campaign_action": Row(
        lambda w, r: f"/admin/marketing/campaign/{w.campaign.pk}/actions/pause/",
        staff((), otherwise=REFUSED) | {C: DENIED},
        post=staff((M, S)),
    ),
    # Reports: aggregates for every staff role; the recipients CSV (personal data) is Compliance's.
    "admin:marketing_campaign_report": Row(
        lambda w, r: f"/admin/marketing/campaign/{w.campaign.pk}/report/", staff(EVERY_STAFF)
    ),
    "admin:marketing_campaign_report_csv": Row(
        lambda w, r: f"/admin/marketing/campaign/{w.campaign.pk}/report/recipients.csv", staff((C, S))
    ),
    "admin:reports_list_health": Row(fixed("/admin/reports/list-health/"), staff(EVERY_STAFF)),
    "admin:reports_list_health_csv": Row(
        fixed("/admin/reports/list-health/consents.csv"), staff(EVERY_STAFF)
    ),
    # --- Staff accounts: superusers only ------------------------------------------------
    **model_admin(
        "auth", "user", lambda w: w.staff["marketer"].pk, view=(S,), add=(S,), change=(S,), delete=(S,)
    ),
    **model_admin("auth", "group", lambda w: w.group.pk, view=(S,), add=(S,), change=(S,), delete=(S,)),
    "admin:auth_user_password_change": Row(
        lambda w, r: f"/admin/auth/user/{w.staff['marketer'].pk}/password/", staff((S,))
    ),
}
