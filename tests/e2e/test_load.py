"""Sign-ups under sustained load while a campaign sends at full speed, end to end.

Several threads fill in the real signup page over HTTP (GET for the CSRF cookie, then the
POST) against ``live_server`` while a real Celery worker sends a campaign to a few hundred
confirmed subscribers through a real SMTP server, and then every confirmation email.
Afterwards: no request failed, every sign-up is recorded (subscriber, confirmation request,
one ``requested`` ledger event), every eligible recipient got the campaign exactly once,
every sign-up got its confirmation, ``verify_ledger`` passes, and the worker's log names no
address. The figures are printed (run with ``-s`` to see them); nothing asserts a speed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests
from django.core.management import call_command

from config.celery import app as celery_app
from marketing import services as marketing
from marketing.models import Campaign, Delivery
from subscribers.bulk import seed_subscribers
from subscribers.models import ConfirmationRequest, ConsentEvent, Subscriber
from tests.conftest import SMTPServer, WorkerProcess
from tests.e2e.campaign_helpers import BODY, wait_until, wait_until_sent, worker_env

pytestmark = pytest.mark.e2e

AUDIENCE = 300  # confirmed subscribers the campaign goes to
THREADS, SIGNUPS_PER_THREAD = 4, 20
SUBJECT = "Load-test news"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class SignupLoad:
    url: str
    consent_field: str
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, thread: int) -> None:
        session = requests.Session()
        for n in range(SIGNUPS_PER_THREAD):
            try:
                page = session.get(self.url, timeout=30)
                token = CSRF.search(page.text)
                response = session.post(
                    self.url,
                    data={
                        "csrfmiddlewaretoken": token.group(1) if token else "",
                        "email": f"load-{thread}-{n}@example.net",
                        "name": f"Load {thread} {n}",
                        self.consent_field: "on",
                    },
                    headers={"Referer": self.url},
                    allow_redirects=False,
                    timeout=30,
                )
                ok = response.status_code == 302 and "check-your-inbox" in response.headers.get(
                    "Location", ""
                )
                with self.lock:
                    self.statuses[response.status_code] += 1
                    if not ok:
                        self.failures.append(f"{response.status_code}: {response.text[:300]}")
            except requests.RequestException as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")


def test_sign_ups_under_load_while_a_campaign_sends(
    live_server,
    caplog,
    consent_texts,
    settings,
    smtp_server: SMTPServer,
    start_celery_worker: Callable[..., WorkerProcess],
):
    settings.SIGNUP_RATE_LIMIT = "100000/h"  # every thread comes from 127.0.0.1
    caplog.set_level(logging.WARNING, logger="mail.log")  # aiosmtpd's line-by-line chatter
    newsletter = consent_texts["newsletter"]
    seed_subscribers(count=AUDIENCE)
    audience = set(Subscriber.objects.values_list("email", flat=True))
    celery_app.control.purge()
    worker = start_celery_worker(**worker_env(smtp_server.url))

    worker_cpu, test_cpu = cpu_seconds(worker.process.pid), time.process_time()
    load = SignupLoad(url=live_server.url + "/", consent_field=f"consent_{newsletter.pk}_email")
    threads = [threading.Thread(target=load.run, args=(n,)) for n in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    campaign = marketing.campaign_create(
        actor=None, name=SUBJECT, purpose=newsletter.purpose, subject=SUBJECT, body=BODY
    )
    campaign = marketing.campaign_send(campaign_id=campaign.pk, actor=None)
    for thread in threads:
        thread.join(timeout=120)
    signup_seconds = time.monotonic() - started
    campaign = wait_until_sent(campaign, log=worker.log, timeout=90)
    signups = THREADS * SIGNUPS_PER_THREAD
    wait_until(
        lambda: len(smtp_server.messages) >= AUDIENCE + signups,
        timeout=90,
        what="the campaign and every confirmation email",
        log=worker.log,
    )
    total_seconds = time.monotonic() - started
    worker_cpu = cpu_seconds(worker.process.pid) - worker_cpu
    test_cpu = time.process_time() - test_cpu

    # No errors.
    assert not load.failures, load.failures[:5]
    assert load.statuses == Counter({302: signups})
    # Every sign-up recorded, once.
    new = Subscriber.objects.filter(email__startswith="load-")
    assert new.count() == signups
    assert ConfirmationRequest.objects.filter(subscriber__in=new).count() == signups
    assert (
        ConsentEvent.objects.filter(subscriber__in=new, kind=ConsentEvent.Kind.REQUESTED).count() == signups
    )
    # The campaign went to every eligible recipient exactly once, and to nobody else.
    campaign_mail = Counter(
        rcpt for mail in smtp_server.messages if mail.message["Subject"] == SUBJECT for rcpt in mail.rcpt_tos
    )
    assert set(campaign_mail) == audience
    assert set(campaign_mail.values()) == {1}
    assert Delivery.objects.filter(campaign=campaign, status=Delivery.Status.SENT).count() == AUDIENCE
    assert campaign.status == Campaign.Status.SENT
    # Every sign-up got its confirmation email.
    confirmations = Counter(
        rcpt for mail in smtp_server.messages if mail.message["Subject"] != SUBJECT for rcpt in mail.rcpt_tos
    )
    assert set(confirmations) == {
        f"load-{t}-{n}@example.net" for t in range(THREADS) for n in range(SIGNUPS_PER_THREAD)
    }
    assert set(confirmations.values()) == {1}
    # The ledger verifies, and the worker logged no address.
    call_command("verify_ledger")
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", worker.log()), worker.log()

    assert campaign.started_at and campaign.finished_at
    sending = (campaign.finished_at - campaign.started_at).total_seconds()
    messages = AUDIENCE + signups
    print(
        f"\nload: {signups} sign-ups in {signup_seconds:.1f} s ({signups / signup_seconds:.0f}/s), "
        f"{THREADS} threads, {len(load.failures)} errors, statuses {dict(load.statuses)}; "
        f"campaign: {AUDIENCE} messages in {sending:.1f} s "
        f"({AUDIENCE / max(sending, 0.001):.0f}/s) meanwhile; "
        f"{signups} confirmations; all done in {total_seconds:.1f} s; worker CPU {worker_cpu:.1f} s "
        f"({1000 * worker_cpu / messages:.1f} ms a message); test process CPU (web server, clients, SMTP "
        f"server) {test_cpu:.1f} s"
    )
