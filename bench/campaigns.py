"""One campaign, sent for real: Celery worker processes, the audience snapshot, the clock.

Runs in the bench's own process with Django set up on the bench database (``bench.run``).
``send`` starts the campaign exactly as the admin's "Send now" does
(``services.campaign_send``: snapshot, then ``run_campaign`` queued on commit) and then
queues one more ``run_campaign`` per extra worker, as ``keep_campaigns_moving`` would, so
every worker claims batches from the start (``SELECT … FOR UPDATE SKIP LOCKED``).

End to end is from just before ``campaign_send`` to the latest ``Delivery.sent_at``, which
dispatch writes right after the receiving side accepted the batch.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.config import BROKER_DB, ROOT, Config
from bench.procs import Child, Supervisor, descendants, peak_rss_kib
from bench.services import flush_redis

WORKER_START_TIMEOUT = 90.0
SUBJECT = "{{ first_name }}, your November news"
BODY = (
    "Hello {{ first_name }}!\n\n"
    "This month: **three new recipes**, a [guided tour](https://example.com/tour) and the "
    "answers to your questions.\n\n"
    "## Recipes\n\n"
    "1. Pumpkin soup with toasted seeds\n2. Lentil and spinach stew\n3. Apple crumble\n\n"
    '> "The crumble was gone in five minutes." (a reader)\n\n'
    "See you next month!\n"
)


@dataclass
class Workers:
    children: list[Child]

    def peak_rss(self) -> list[dict[str, Any]]:
        """VmHWM of each worker process and of every process below it (prefork children), in MB."""
        peaks = []
        for child in self.children:
            for pid in descendants(child.pid):
                kib = peak_rss_kib(pid)
                if kib is not None:
                    peaks.append(
                        {"worker": child.name, "pid": pid, "peak_rss_mb": round(kib * 1024 / 1e6, 1)}
                    )
        return peaks


def start_workers(
    supervisor: Supervisor,
    config: Config,
    *,
    label: str,
    count: int,
    email_url: str,
    batch_size: int,
    pool: str = "solo",
    concurrency: int = 1,
    profile: bool = False,
) -> Workers:
    """``count`` fresh ``celery worker`` processes (fresh, so VmHWM is this run's peak)."""
    flush_redis(BROKER_DB)  # leftovers (signup confirmations) must not be sent by these workers
    env = config.app_env(
        EMAIL_URL=email_url,
        DISPATCH_BATCH_SIZE=str(batch_size),
        BENCH_PROFILE="1" if profile else "",
    )
    children = []
    for index in range(count):
        command = [
            str(config.python),
            "-m",
            "celery",
            "-A",
            "bench.worker",
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"bench-{label}-{index}@%h",
        ]
        children.append(supervisor.start(f"worker-{label}-{index}", command, env=env, cwd=ROOT))
    for child in children:
        child.wait_for_line(" ready.", timeout=WORKER_START_TIMEOUT)
    return Workers(children)


def stop_workers(supervisor: Supervisor, workers: Workers) -> None:
    for child in workers.children:
        supervisor.stop(child)


def send(*, runners: int, timeout: float) -> dict[str, Any]:
    """Create and send one campaign to the newsletter audience; wait until it is sent."""
    from django.db.models import Max

    from marketing import services, tasks
    from marketing.models import Campaign, Delivery
    from subscribers.models import Purpose

    purpose = Purpose.objects.get(slug="newsletter")
    campaign = services.campaign_create(
        actor=None, name=f"bench {time.strftime('%H:%M:%S')}", purpose=purpose, subject=SUBJECT, body=BODY
    )
    started = time.time()
    services.campaign_send(campaign_id=campaign.pk, actor=None)
    snapshot_seconds = time.time() - started
    for _ in range(runners - 1):
        tasks.run_campaign.delay(campaign.pk)
    deadline = time.monotonic() + timeout
    while True:
        campaign.refresh_from_db()
        if campaign.status != Campaign.Status.SENDING:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"campaign {campaign.pk} still sending after {timeout:.0f} s "
                f"({campaign.sent_count} of {campaign.recipients_count} sent)"
            )
        time.sleep(0.2)
    last: datetime | None = Delivery.objects.filter(campaign=campaign).aggregate(at=Max("sent_at"))["at"]
    end_to_end = (last.timestamp() - started) if last else float("nan")
    return {
        "campaign_id": campaign.pk,
        "status": campaign.status,
        "paused_reason": campaign.paused_reason,
        "recipients": campaign.recipients_count,
        "sent": campaign.sent_count,
        "failed": campaign.failed_count,
        "skipped": campaign.skipped_count,
        "snapshot_seconds": snapshot_seconds,
        "end_to_end_seconds": end_to_end,
        "per_second": campaign.sent_count / end_to_end if last else 0.0,
        "dispatch_per_second": campaign.sent_count / (end_to_end - snapshot_seconds) if last else 0.0,
    }


def query_stats(stats_dir: Path, pids: list[int]) -> dict[str, Any]:
    """Per-batch SQL from the workers' ``bench.worker`` records (statements and DB time)."""
    records = []
    for pid in pids:
        path = stats_dir / f"worker-{pid}.jsonl"
        if path.exists():
            records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    batches = sum(r["batches"] for r in records)
    if not batches:
        return {"batches": 0}
    inside = [q for r in records for q in r["batch_queries"]]
    sizes = [s for r in records for s in r["batch_sizes"]]
    busy = sum(r["seconds"] for r in records)
    cpu = sum(r.get("cpu_seconds", 0.0) for r in records)
    return {
        "tasks": len(records),
        "batches": batches,
        "batch_size_median": statistics.median(sizes),
        "queries_per_batch": round(sum(r["queries"] for r in records) / batches, 2),
        "queries_in_send_batch_median": statistics.median(inside),
        "queries_in_send_batch_max": max(inside),
        "db_share_of_worker_time": round(sum(r["db_seconds"] for r in records) / busy, 3) if busy else None,
        "worker_busy_seconds": round(busy, 2),
        # CPU the workers themselves spent: a figure that depends less on what else the machine runs.
        "worker_cpu_seconds": round(cpu, 2),
        "worker_cpu_share_of_busy": round(cpu / busy, 3) if busy else None,
    }


def prebuilt_messages(campaign_id: int, count: int) -> list[tuple[str, str, bytes]]:
    """``count`` of this campaign's messages, rendered as dispatch renders them, as bytes."""
    from email.utils import make_msgid, parseaddr

    from django.conf import settings
    from django.utils import timezone

    from marketing import rendering
    from marketing.models import Campaign, Delivery

    campaign = Campaign.objects.select_related("purpose", "layout").get(pk=campaign_id)
    prepared = rendering.prepare(campaign)
    sender = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    rows = (
        Delivery.objects.filter(campaign_id=campaign_id)
        .order_by("id")
        .values_list("subscriber_id", "subscriber__email", "subscriber__name", "subscriber__link_generation")
    )[:count]
    messages = []
    for subscriber_id, email, name, generation in rows:
        if not email:
            continue
        recipient = rendering.Recipient(
            subscriber_id=subscriber_id,
            email=email,
            name=name,
            consented_at=timezone.now(),
            link_generation=generation,
        )
        message = rendering.build_message(prepared, recipient)
        message.extra_headers["Message-ID"] = make_msgid(domain="example.com")
        messages.append((sender, email, message.message().as_bytes()))
    return messages


def profile_summary(stats_dir: Path, pids: list[int], out: Path, *, top: int = 30) -> Path | None:
    """The workers' cProfile dumps (``--profile``) merged, top functions by own time."""
    import io
    import pstats

    dumps = [p for pid in pids for p in stats_dir.glob(f"profile-{pid}-*.pstats")]
    if not dumps:
        return None
    buffer = io.StringIO()
    stats = pstats.Stats(*map(str, dumps), stream=buffer)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    out.write_text(buffer.getvalue())
    return out
