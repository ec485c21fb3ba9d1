"""The bench's local Mailgun: answers anymail's real backend as Mailgun would, and counts."""

from __future__ import annotations

import base64

import requests
from anymail.message import AnymailMessage
from django.core.mail import get_connection

from bench import provider


def test_the_sink_counts_anymails_batch_and_refuses_what_mailgun_refuses():
    with provider.serve() as sink:
        backend = get_connection(
            "anymail.backends.mailgun.EmailBackend",
            api_key=provider.API_KEY,
            sender_domain=provider.DOMAIN,
            api_url=f"http://{sink.host}:{sink.port}/v3",
        )
        message = AnymailMessage(
            subject="Hello %recipient.name%",
            body="Hi %recipient.name%",
            from_email="news@example.com",
            to=[f"r{n}@example.org" for n in range(3)],
            connection=backend,
        )
        message.merge_data = {f"r{n}@example.org": {"name": f"R{n}"} for n in range(3)}
        assert message.send() == 1
        assert message.anymail_status.status == {"queued"}
        assert sink.snapshot() == (1, 3, 0)

        url = f"http://{sink.host}:{sink.port}/v3/{provider.DOMAIN}/messages"
        good = "Basic " + base64.b64encode(f"api:{provider.API_KEY}".encode()).decode()
        form = {"from": "news@example.com", "text": "hi"}
        wrong_key = requests.post(
            url, data={**form, "to": "a@example.org"}, headers={"Authorization": "Basic eA=="}, timeout=10
        )
        too_many = requests.post(
            url,
            data=[*form.items(), *(("to", f"x{n}@example.org") for n in range(1001))],
            headers={"Authorization": good},
            timeout=10,
        )
        no_text = requests.post(
            url,
            data={"from": "news@example.com", "to": "a@example.org"},
            headers={"Authorization": good},
            timeout=10,
        )
        assert (wrong_key.status_code, too_many.status_code, no_text.status_code) == (401, 400, 400)
        assert sink.snapshot() == (1, 3, 3)
