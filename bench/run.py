"""The bench, start to finish: ``python -m bench [--sizes 10000,100000] [--full] …``.

For each size (ascending; the database grows by ``seed_demo --subscribers``):
1. SMTP: fresh Celery workers send one campaign to ``smtp-sink``; end-to-end msg/s, the
   audience snapshot time, each worker's peak RSS and the SQL per batch.
   At the first size, on the same sink: django-newsletter sending the same number of
   messages (its own venv and project, ``bench.peer``) and the raw ``smtplib`` limit.
2. Provider: fresh workers send one campaign through anymail's Mailgun backend to a local
   Mailgun (``bench.provider``); recipients/s, peak RSS, SQL per batch.
3. Admin: gunicorn, logged in as ``admin``; TTFB of the subscriber list, the campaign's
   page and the admin index.
At the first size also: sign-ups/s through gunicorn, then ``verify_ledger``.

Everything it starts is stopped at the end, on failure and on Ctrl-C. Results:
``var/bench/results.json`` and ``var/bench/results.md``; logs under ``var/bench/logs``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench import admin_pages, campaigns, provider, report, services, signup, smtp
from bench.config import BROKER_DB, CACHE_DB, DATABASE, OUT, PEER_DATABASE, ROOT, Config
from bench.procs import Child, Supervisor, cpu_seconds, cpu_seconds_named, signals_stop
from bench.web import start_gunicorn

PEER_VENV = OUT / "venv-peer"
PHASES = ("smtp", "peer", "raw", "provider", "admin", "signup")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="subscriber counts, comma-separated")
    parser.add_argument("--full", action="store_true", help="also run at 1,000,000 subscribers")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="Celery worker processes")
    parser.add_argument("--pool", default="solo", choices=("solo", "prefork", "threads"))
    parser.add_argument("--concurrency", type=int, default=1, help="per worker process (prefork/threads)")
    parser.add_argument("--smtp-batch", type=int, default=200, help="DISPATCH_BATCH_SIZE over SMTP")
    parser.add_argument("--provider-batch", type=int, default=1000, help="DISPATCH_BATCH_SIZE via Mailgun")
    parser.add_argument("--peer-messages", type=int, default=0, help="default: the first size")
    parser.add_argument("--signup-count", type=int, default=6000, help="at most this many sign-ups")
    parser.add_argument("--signup-seconds", type=float, default=20.0, help="and for at most this long")
    parser.add_argument("--signup-concurrency", type=int, default=16, help="virtual visitors")
    parser.add_argument("--web-workers", type=int, default=2 * (os.cpu_count() or 2), help="gunicorn workers")
    parser.add_argument("--web-threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--admin-repeat", type=int, default=5)
    parser.add_argument(
        "--skip", default="", help=f"phases to leave out, comma-separated: {','.join(PHASES)}"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the workers; top functions to var/bench"
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the bench databases afterwards")
    args = parser.parse_args(argv)
    args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    if args.full and report.MILLION not in args.sizes:
        args.sizes.append(report.MILLION)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - set(PHASES)
    if unknown:
        parser.error(f"unknown phases in --skip: {', '.join(sorted(unknown))}")
    return args


def manage(config: Config, *arguments: str, timeout: float = 3600) -> str:
    """``manage.py <arguments>`` with the bench's environment; its output, or it fails loudly."""
    done = subprocess.run(  # noqa: S603
        [str(config.python), "manage.py", *arguments],
        cwd=ROOT,
        env=config.app_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(arguments)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def setup_django(config: Config) -> None:
    os.environ.update(config.app_env())
    import django

    django.setup()


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, supervisor: Supervisor, config: Config) -> None:
        self.args, self.supervisor, self.config = args, supervisor, config
        self.sink_port = 0
        self.sink: Any = None
        self.results: dict[str, Any] = {
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
            "sizes": {},
            "comparison": {},
            "notes": [],
        }

    def save(self) -> None:
        report.write(self.results, self.config.out)

    # --- the run ----------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        self.results["environment"] = services.environment(self.config.python)
        say("environment: " + json.dumps(self.results["environment"]))
        if "smtp" not in args.skip:  # the peer and raw smtplib run only after it; no postfix otherwise
            binary = smtp.find_or_install_smtp_sink()
            self.sink, self.sink_port = smtp.start_sink(self.supervisor, binary, cwd=ROOT)
            say(f"smtp-sink on 127.0.0.1:{self.sink_port}")
        say("migrate and collectstatic")
        manage(self.config, "migrate", "--noinput")
        manage(self.config, "collectstatic", "--noinput")
        setup_django(self.config)
        seeded = 0
        for index, size in enumerate(args.sizes):
            first = index == 0
            here: dict[str, Any] = self.results["sizes"].setdefault(str(size), {})
            here["seed"] = self.seed(size - seeded)
            seeded = size
            if "smtp" not in args.skip:
                here["smtp"] = self.dispatch(
                    "smtp", size, f"smtp://127.0.0.1:{self.sink_port}", args.smtp_batch
                )
                self.save()
                if first:
                    self.compare(here["smtp"])
            if "provider" not in args.skip:
                with provider.serve() as mailgun:
                    here["provider"] = self.dispatch("provider", size, mailgun.email_url, args.provider_batch)
                    calls, recipients, refused = mailgun.snapshot()
                    here["provider"]["server"] = {
                        "calls": calls,
                        "recipients": recipients,
                        "refused_calls": refused,
                        "cpu_seconds": round(mailgun.cpu_seconds, 2),
                    }
                    if recipients != here["provider"]["campaign"]["sent"]:
                        self.note(
                            f"{size:,}: the local Mailgun counted {recipients} recipients, "
                            f"dispatch recorded {here['provider']['campaign']['sent']} sent"
                        )
                self.save()
            if "admin" not in args.skip:
                here["admin"] = self.admin(here)
                self.save()
            if first and "signup" not in args.skip:
                self.results["signup"] = self.signups()
                self.save()
        environment = self.results["environment"]
        environment["load_average_at_end"] = os.getloadavg()
        busiest = max(environment["load_average_at_start"][0], environment["load_average_at_end"][0])
        if busiest > 0.5:
            self.note(
                f"The machine was not idle (1-minute load average {busiest:.2f} at start or end, "
                f"{environment['cores']} cores): the figures are indicative. The CPU-per-message rows "
                "depend less on other load than the rates do."
            )

    def note(self, text: str) -> None:
        say("NOTE " + text)
        self.results["notes"].append(text)

    def seed(self, count: int) -> dict[str, Any]:
        say(f"seed_demo --subscribers {count:,}")
        started = time.monotonic()
        output = manage(self.config, "seed_demo", "--force", "--subscribers", str(count))
        seconds = time.monotonic() - started
        vacuum = services.vacuum(self.config.database_url)
        match = re.search(r"in ([\d.]+) s", output)
        return {
            "added": count,
            "seconds": round(seconds, 1),
            "seed_seconds_reported": float(match.group(1)) if match else None,
            "vacuum_analyze_seconds": round(vacuum, 1),
            "database_mb": round(services.database_size(self.config.database_url) / 1e6),
        }

    def dispatch(self, label: str, size: int, email_url: str, batch_size: int) -> dict[str, Any]:
        args = self.args
        vacuumed = services.vacuum(self.config.database_url)
        say(
            f"{label}: {args.workers} worker(s), batches of {batch_size}, {size:,} subscribers "
            f"(VACUUM ANALYZE first: {vacuumed:.0f} s)"
        )
        workers = campaigns.start_workers(
            self.supervisor,
            self.config,
            label=f"{label}-{size}",
            count=args.workers,
            email_url=email_url,
            batch_size=batch_size,
            pool=args.pool,
            concurrency=args.concurrency,
            profile=args.profile,
        )
        pids = [pid for child in workers.children for pid in campaigns.descendants(child.pid)]
        sink_before = smtp.sink_messages(self.sink)
        sink_cpu_before = cpu_seconds(self.sink.pid)
        try:
            runners = args.workers * (args.concurrency if args.pool != "solo" else 1)
            result = campaigns.send(runners=runners, timeout=120 + size / 100)
            peaks = workers.peak_rss()
        finally:
            campaigns.stop_workers(self.supervisor, workers)
        outcome: dict[str, Any] = {
            "campaign": result,
            "workers_peak_rss": peaks,
            "queries": campaigns.query_stats(self.config.stats, pids),
        }
        if label == "smtp":
            time.sleep(0.5)  # the sink prints its counter when a session ends
            outcome["sink_accepted"] = smtp.sink_messages(self.sink) - sink_before
            outcome["sink_cpu_seconds"] = round(cpu_seconds(self.sink.pid) - sink_cpu_before, 2)
        queries = outcome["queries"]
        if result["sent"] and queries.get("worker_cpu_seconds"):
            outcome["worker_cpu_us_per_message"] = round(queries["worker_cpu_seconds"] / result["sent"] * 1e6)
        if args.profile:
            path = campaigns.profile_summary(
                self.config.stats, pids, self.config.out / f"profile-{label}-{size}.txt"
            )
            outcome["profile"] = str(path) if path else None
        c = result
        say(
            f"{label}: {c['sent']:,} sent, {c['failed']} failed, {c['skipped']} skipped in "
            f"{c['end_to_end_seconds']:.1f} s: {c['per_second']:,.0f}/s end to end "
            f"(snapshot {c['snapshot_seconds']:.2f} s); peak RSS "
            f"{max((p['peak_rss_mb'] for p in peaks), default=0):.0f} MB; "
            f"{queries.get('queries_per_batch')} queries/batch; "
            f"worker CPU {outcome.get('worker_cpu_us_per_message')} us/message"
        )
        if c["status"] != "sent" or c["failed"] or c["skipped"]:
            self.note(
                f"{label} at {size:,}: status {c['status']} {c['paused_reason']!r}, "
                f"{c['failed']} failed, {c['skipped']} skipped"
            )
        return outcome

    def compare(self, smtp_result: dict[str, Any]) -> None:
        """django-newsletter and raw smtplib on the same sink, the same number of messages."""
        args = self.args
        ours = smtp_result["campaign"]
        count = args.peer_messages or ours["recipients"]
        self.results["comparison"]["ours_per_second"] = ours["per_second"]
        self.results["comparison"]["ours_messages"] = ours["sent"]
        self.results["comparison"]["ours_cpu_us_per_message"] = smtp_result.get("worker_cpu_us_per_message")
        if "peer" not in args.skip:
            self.results["comparison"]["peer"] = self.peer(count)
            self.save()
        if "raw" not in args.skip:
            say(f"raw smtplib: building {count:,} messages as dispatch does")
            messages = campaigns.prebuilt_messages(ours["campaign_id"], count)
            raw = smtp.raw_smtplib(self.sink_port, messages)
            say(f"raw smtplib: {raw['per_second']:,.0f} msg/s over one connection")
            self.results["comparison"]["raw_smtplib"] = raw
            self.save()

    def peer(self, count: int) -> dict[str, Any]:
        python = PEER_VENV / "bin" / "python"
        if not python.exists():
            raise RuntimeError(f"{python} is missing: run `make bench`, which creates the peer venv")
        url = services.recreate_database(PEER_DATABASE).replace("postgres://", "postgresql://", 1)
        say(f"peer: django-newsletter sending {count:,} messages to the same sink")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "DJANGO_SETTINGS_MODULE": "bench.peer.settings",
            "PEER_DATABASE_URL": url,
            "PEER_SMTP_PORT": str(self.sink_port),
            "PYTHONWARNINGS": "ignore",
        }
        before = smtp.sink_messages(self.sink)
        done = subprocess.run(  # noqa: S603
            [str(python), "-m", "bench.peer.run", str(count)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300 + count / 20,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the peer failed ({done.returncode}):\n{done.stdout}{done.stderr[-4000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        time.sleep(0.5)
        result["sink_accepted"] = smtp.sink_messages(self.sink) - before
        say(f"peer: {result['per_second']:,.0f} msg/s ({result['sink_accepted']:,} accepted by the sink)")
        return result

    def admin(self, here: dict[str, Any]) -> dict[str, Any]:
        args = self.args
        from marketing import services as marketing
        from marketing.models import Campaign
        from subscribers.models import Purpose

        sent_id = (here.get("smtp") or here.get("provider") or {}).get("campaign", {}).get("campaign_id")
        sent_id = sent_id or Campaign.objects.order_by("-pk").values_list("pk", flat=True).first()
        # A draft's page also shows the audience breakdown (counted over every subscriber).
        draft = marketing.campaign_create(
            actor=None,
            name="bench draft",
            purpose=Purpose.objects.get(slug="newsletter"),
            subject=campaigns.SUBJECT,
            body=campaigns.BODY,
        )
        from marketing.reports import rollup

        # What the scheduler's rollup task would have done by now; timed, it runs in the background.
        started = time.perf_counter()
        rollup.reports_refresh()
        say(f"reports rollup: {time.perf_counter() - started:.1f} s")
        pages = {
            "subscriber list": "/admin/subscribers/subscriber/",
            "campaign page (draft)": f"/admin/marketing/campaign/{draft.pk}/change/",
            "campaign page (sent)": f"/admin/marketing/campaign/{sent_id}/change/",
            "campaign report (sent)": f"/admin/marketing/campaign/{sent_id}/report/",
            "list health": "/admin/reports/list-health/",
            "admin index": "/admin/",
        }
        if sent_id is None:  # --skip smtp,provider: no campaign was sent to show
            self.note("admin: no campaign was sent in this run; the sent campaign's pages are not measured")
            pages = {k: v for k, v in pages.items() if "(sent)" not in k}
        with self.gunicorn() as (_child, port):
            result = admin_pages.measure(
                port, self.config.var_dir / "demo-credentials.json", pages, repeat=args.admin_repeat
            )
        say("admin: " + ", ".join(f"{k} {v['ttfb_median_ms']:.0f} ms" for k, v in result.items()))
        return result

    @contextlib.contextmanager
    def gunicorn(self, **kwargs: str) -> Iterator[tuple[Child, int]]:
        """The bench's gunicorn (``--web-workers`` x ``--web-threads``), stopped afterwards."""
        child, port = start_gunicorn(
            self.supervisor,
            self.config,
            workers=self.args.web_workers,
            threads=self.args.web_threads,
            **kwargs,
        )
        try:
            yield child, port
        finally:
            self.supervisor.stop(child)

    def framework_floor(self) -> dict[str, Any]:
        """The same gunicorn serving a view that only answers "ok" (``bench.floor_wsgi``)."""
        with self.gunicorn(app="bench.floor_wsgi:application") as (child, port):
            result = signup.floor(
                port,
                seconds=5.0,
                concurrency=self.args.signup_concurrency,
                server_cpu=lambda: cpu_seconds(child.pid),
            )
        say(
            f"framework floor: {result['per_second']:,.0f} requests/s, gunicorn CPU "
            f"{result['server_cpu_ms_per_request']} ms per request"
        )
        return result

    def signups(self) -> dict[str, Any]:
        args = self.args
        from subscribers.models import Subscriber

        before = Subscriber.objects.count()
        with self.gunicorn(SIGNUP_RATE_LIMIT="1000000/s") as (child, port):
            say(
                f"sign-ups: {args.signup_concurrency} visitors, at most {args.signup_count:,} in "
                f"{args.signup_seconds:.0f} s"
            )
            result = signup.run(
                port,
                total=args.signup_count,
                seconds=args.signup_seconds,
                concurrency=args.signup_concurrency,
                warmup=min(200, args.signup_count // 10),
                server_cpu=lambda: cpu_seconds(child.pid),
                database_cpu=lambda: cpu_seconds_named("postgres"),
            )
        result["framework_floor"] = self.framework_floor()
        result["subscribers_before"] = before
        result["subscribers_created"] = (
            Subscriber.objects.filter(email__startswith=result["email_prefix"] + "-")
            .exclude(email__contains="-warm-")
            .count()
        )
        if result["subscribers_created"] != result["signups"]:
            self.note(f"sign-ups: {result['signups']} answered, {result['subscribers_created']} stored")
        say(
            f"sign-ups: {result['per_second']:,.0f}/s, POST p50 {result['post_p50_ms']:.0f} ms, "
            f"p99 {result['post_p99_ms']:.0f} ms; gunicorn CPU {result['server_cpu_ms_per_signup']} ms "
            f"per sign-up; errors {result['errors']}"
        )
        say("verify_ledger")
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603
            [str(self.config.python), "manage.py", "verify_ledger"],
            cwd=ROOT,
            env=self.config.app_env(),
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        result["verify_ledger_ok"] = done.returncode == 0
        result["verify_ledger_seconds"] = round(time.monotonic() - started, 1)
        result["verify_ledger_output"] = (done.stdout + done.stderr).strip()[-2000:]
        say(f"verify_ledger: {'passed' if done.returncode == 0 else 'FAILED'}")
        return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(OUT / "logs")
    status = 1
    try:
        with signals_stop():
            services.ensure_postgresql(supervisor)
            services.ensure_redis(supervisor, OUT / "redis.pid")
            services.flush_redis(BROKER_DB, CACHE_DB)
            config = Config(database_url=services.recreate_database(DATABASE))
            shutil.rmtree(config.stats, ignore_errors=True)
            shutil.rmtree(config.var_dir, ignore_errors=True)
            bench = Bench(args, supervisor, config)
            try:
                bench.run()
                status = 0
            finally:
                rows = report.write(bench.results, config.out)
                if rows:
                    print("\n" + report.console(rows))
                print(f"\nresults: {config.out / 'results.json'} and {config.out / 'results.md'}")
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping everything it started", file=sys.stderr)
        status = 130
    finally:
        supervisor.stop_all()
        _close_django()
        try:
            services.flush_redis(BROKER_DB, CACHE_DB)
            if not args.keep_db:
                services.drop_database(DATABASE)
                services.drop_database(PEER_DATABASE)
        except Exception as exc:
            print(f"bench: cleanup: {exc}", file=sys.stderr)
    return status


def _close_django() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    sys.exit(main())
