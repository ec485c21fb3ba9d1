"""Every state change of subscribers and their consent, one module per area.

Each service runs in one transaction and writes its ledger events in it; emails are
queued with ``transaction.on_commit`` so a rolled-back change never mails anyone.
Callers import this package: ``from subscribers import services``.
"""

from subscribers.services.consent import (
    PAUSE_MONTHS,
    consent_frequency_set,
    consent_withdraw,
    consents_mark_sent,
    consents_withdraw_all,
    subscriber_pause,
    subscriber_resume,
)
from subscribers.services.data_rights import ErasureError, subscriber_access_record, subscriber_erase
from subscribers.services.on_request import (
    OnRequestError,
    UnsubscribeOutcome,
    subscriber_unsubscribe_on_request,
)
from subscribers.services.preferences import (
    PreferenceError,
    UndoOutcome,
    consent_opt_in,
    email_change_confirm,
    email_change_mark_sent,
    email_change_request,
    has_postal_address,
    subscriber_profile_update,
    unsubscribe_undo,
)
from subscribers.services.signup import (
    ConfirmationError,
    ConsentChoice,
    SignupOutcome,
    address_hash,
    confirmation_mark_sent,
    confirmations_expire,
    consent_text_publish,
    subscriber_sign_up,
    subscription_confirm,
)
from subscribers.services.suppression import SuppressionError, address_suppress, suppression_lift

__all__ = [
    "PAUSE_MONTHS",
    "ConfirmationError",
    "ConsentChoice",
    "ErasureError",
    "OnRequestError",
    "PreferenceError",
    "SignupOutcome",
    "SuppressionError",
    "UndoOutcome",
    "UnsubscribeOutcome",
    "address_hash",
    "address_suppress",
    "confirmation_mark_sent",
    "confirmations_expire",
    "consent_frequency_set",
    "consent_opt_in",
    "consent_text_publish",
    "consent_withdraw",
    "consents_mark_sent",
    "consents_withdraw_all",
    "email_change_confirm",
    "email_change_mark_sent",
    "email_change_request",
    "has_postal_address",
    "subscriber_access_record",
    "subscriber_erase",
    "subscriber_pause",
    "subscriber_profile_update",
    "subscriber_resume",
    "subscriber_sign_up",
    "subscriber_unsubscribe_on_request",
    "subscription_confirm",
    "suppression_lift",
    "unsubscribe_undo",
]
