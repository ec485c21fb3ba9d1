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

__all__ = [
    "PAUSE_MONTHS",
    "ConfirmationError",
    "ConsentChoice",
    "SignupOutcome",
    "address_hash",
    "confirmation_mark_sent",
    "confirmations_expire",
    "consent_frequency_set",
    "consent_text_publish",
    "consent_withdraw",
    "consents_mark_sent",
    "consents_withdraw_all",
    "subscriber_pause",
    "subscriber_resume",
    "subscriber_sign_up",
    "subscription_confirm",
]
