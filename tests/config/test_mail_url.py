"""EMAIL_URL picks the outbox, SMTP or any anymail provider by configuration alone."""

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.mail_url import OUTBOX_BACKEND, parse_email_url

DEFAULT = Path("/srv/var/outbox")


def test_outbox_default_and_explicit_folder():
    assert parse_email_url("outbox://", default_outbox=DEFAULT).outbox_dir == DEFAULT
    parsed = parse_email_url("outbox:///tmp/mails", default_outbox=DEFAULT)
    assert (parsed.backend, parsed.outbox_dir) == (OUTBOX_BACKEND, Path("/tmp/mails"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://localhost:2525", {"EMAIL_HOST": "localhost", "EMAIL_PORT": 2525, "EMAIL_USE_TLS": False}),
        (
            "smtp+tls://u%40x:p%2Fw@mail.example.com:587",
            {
                "EMAIL_HOST_USER": "u@x",
                "EMAIL_HOST_PASSWORD": "p/w",
                "EMAIL_USE_TLS": True,
                "EMAIL_PORT": 587,
            },
        ),
        ("smtps://mail.example.com", {"EMAIL_USE_SSL": True, "EMAIL_PORT": 465}),
    ],
)
def test_smtp(url, expected):
    parsed = parse_email_url(url, default_outbox=DEFAULT)
    assert parsed.backend == "django.core.mail.backends.smtp.EmailBackend"
    assert expected.items() <= parsed.settings.items()


def test_any_anymail_provider_with_an_overridable_api_address():
    parsed = parse_email_url(
        "anymail+mailgun://?api_key=key-1&api_url=http://127.0.0.1:9000/v3/&sender_domain=mg.example.com",
        default_outbox=DEFAULT,
    )
    assert parsed.backend == "anymail.backends.mailgun.EmailBackend"
    assert parsed.anymail == {
        "MAILGUN_API_KEY": "key-1",
        "MAILGUN_API_URL": "http://127.0.0.1:9000/v3/",
        "MAILGUN_SENDER_DOMAIN": "mg.example.com",
    }
    postmark = parse_email_url("anymail+postmark://?server_token=t", default_outbox=DEFAULT)
    assert (postmark.backend, postmark.anymail) == (
        "anymail.backends.postmark.EmailBackend",
        {"POSTMARK_SERVER_TOKEN": "t"},
    )


@pytest.mark.parametrize("url", ["anymail+nosuchmailer://", "ftp://x", "smtp://"])
def test_bad_urls_are_explained(url):
    with pytest.raises(ImproperlyConfigured):
        parse_email_url(url, default_outbox=DEFAULT)
