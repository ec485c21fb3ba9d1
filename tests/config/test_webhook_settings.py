"""Webhook keys reach anymail from ANYMAIL_<SETTING> variables and from EMAIL_URL."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "import django, json; django.setup(); from django.conf import settings; "
    "print(json.dumps(settings.ANYMAIL))"
)


def anymail_settings(tmp_path, **environment):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANYMAIL_", "EMAIL_URL"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="1", VAR_DIR=str(tmp_path), **environment)
    result = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_anymail_variables_and_email_url_parameters_become_anymail_settings(tmp_path):
    found = anymail_settings(
        tmp_path,
        EMAIL_URL="anymail+mailgun://?api_key=k&webhook_signing_key=from-url",
        ANYMAIL_WEBHOOK_SECRET="hooks:secret",
        ANYMAIL_POSTAL_WEBHOOK_KEY="postal-key",
    )
    # The providers' own tracking switched off: tests/marketing/test_tracking.py.
    found = {name: value for name, value in found.items() if not name.endswith("_SEND_DEFAULTS")}
    assert found == {
        "MAILGUN_API_KEY": "k",
        "MAILGUN_WEBHOOK_SIGNING_KEY": "from-url",
        "POSTAL_WEBHOOK_KEY": "postal-key",
        # A number, not the environment's string: anymail passes it to requests as a timeout.
        "REQUESTS_TIMEOUT": 30.0,
        "WEBHOOK_SECRET": ["hooks:secret"],
    }


def test_an_anymail_variable_wins_over_the_email_url(tmp_path):
    found = anymail_settings(
        tmp_path,
        EMAIL_URL="anymail+mailgun://?api_key=k&webhook_signing_key=from-url",
        ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY="from-variable",
    )
    assert found["MAILGUN_WEBHOOK_SIGNING_KEY"] == "from-variable"
    assert found["WEBHOOK_SECRET"] == []


def test_several_webhook_secrets_for_a_rotation(tmp_path):
    found = anymail_settings(tmp_path, ANYMAIL_WEBHOOK_SECRET="hooks:old-one, hooks:new-one")
    assert found["WEBHOOK_SECRET"] == ["hooks:old-one", "hooks:new-one"]
