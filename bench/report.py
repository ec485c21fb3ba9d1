"""The targets of issue 6, each figure next to its target, and the two result files.

Targets are fixed here and never adjusted to the figures. A target stated for 1,000,000
subscribers that was not run at that size is judged on a linear extrapolation from the
largest size measured, and the row says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MILLION = 1_000_000
SMTP_MIN_PER_SECOND = 1500
SMTP_MIN_RATIO_TO_PEER = 6.0
PROVIDER_MAX_SECONDS_FOR_1M = 120.0
WORKER_MAX_PEAK_MB = 150.0
WORKER_MAX_GROWTH = 0.15
SNAPSHOT_MAX_SECONDS_FOR_1M = 20.0
SIGNUP_MIN_PER_SECOND = 300
SIGNUP_MAX_P99_MS = 200.0
ADMIN_MAX_MS = 300.0


def _verdict(ok: bool | None, extrapolated: bool = False) -> str:
    if ok is None:
        return "n/a"
    word = "PASS" if ok else "MISS"
    return f"{word} (extrapolated)" if extrapolated else word


def at_million(seconds_by_size: dict[int, float]) -> tuple[float, str]:
    """Seconds at 1M subscribers: measured, else a straight line through the two largest sizes
    (fixed costs stay fixed), else proportional to the one size; and how it was obtained."""
    if MILLION in seconds_by_size:
        return seconds_by_size[MILLION], ""
    sizes = sorted(seconds_by_size)
    if len(sizes) >= 2 and seconds_by_size[sizes[-1]] > seconds_by_size[sizes[-2]]:
        (n1, n2) = sizes[-2:]
        slope = (seconds_by_size[n2] - seconds_by_size[n1]) / (n2 - n1)
        return seconds_by_size[n2] + slope * (
            MILLION - n2
        ), f", extrapolated (line through {n1:,} and {n2:,})"
    n = sizes[-1]
    return seconds_by_size[n] * MILLION / n, f", extrapolated (proportional from {n:,})"


def targets(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per figure: what, at which size, the figure, the target and PASS/MISS."""
    rows: list[dict[str, str]] = []
    sizes = sorted(int(s) for s in results.get("sizes", {}))

    def row(what: str, size: str, figure: str, target: str, verdict: str) -> None:
        rows.append({"what": what, "size": size, "figure": figure, "target": target, "result": verdict})

    for size in sizes:
        smtp = results["sizes"][str(size)].get("smtp")
        if smtp:
            rate = smtp["campaign"]["per_second"]
            row(
                "SMTP dispatch, end to end",
                f"{size:,}",
                f"{rate:,.0f} msg/s",
                f"≥ {SMTP_MIN_PER_SECOND:,} msg/s",
                _verdict(rate >= SMTP_MIN_PER_SECOND),
            )
    comparison = results.get("comparison", {})
    peer, ours = comparison.get("peer"), comparison.get("ours_per_second")
    if peer and ours:
        ratio = ours / peer["per_second"]
        row(
            "SMTP dispatch vs django-newsletter",
            f"{peer['messages']:,}",
            f"{ratio:.1f}x ({ours:,.0f} vs {peer['per_second']:,.0f} msg/s)",
            f"≥ {SMTP_MIN_RATIO_TO_PEER:g}x",
            _verdict(ratio >= SMTP_MIN_RATIO_TO_PEER),
        )
    raw = comparison.get("raw_smtplib")
    if raw and ours:
        row(
            "SMTP dispatch vs raw smtplib (1 connection, prebuilt)",
            f"{raw['messages']:,}",
            f"{ours / raw['per_second']:.2f}x ({raw['per_second']:,.0f} msg/s raw)",
            "information",
            "n/a",
        )
    cores = results.get("environment", {}).get("cores") or 1
    for size in sizes:
        for phase, unit in (("smtp", "message"), ("provider", "recipient")):
            us = results["sizes"][str(size)].get(phase, {}).get("worker_cpu_us_per_message")
            if us:
                row(
                    f"Worker CPU per {unit} ({phase})",
                    f"{size:,}",
                    f"{us:,} us (all {cores} cores: at most {cores * 1e6 / us:,.0f}/s)",
                    "information",
                    "n/a",
                )
    first = comparison.get("ours_cpu_us_per_message")
    if peer and first and peer.get("cpu_us_per_message"):
        row(
            "CPU per message, django-newsletter / ours",
            f"{peer['messages']:,}",
            f"{peer['cpu_us_per_message'] / first:.1f}x ({peer['cpu_us_per_message']:,} vs {first:,} us)",
            "information (less load-dependent)",
            "n/a",
        )

    handed_over = {
        s: results["sizes"][str(s)]["provider"]["campaign"]
        for s in sizes
        if results["sizes"][str(s)].get("provider")
    }
    if handed_over:
        seconds, basis = at_million({s: c["end_to_end_seconds"] for s, c in handed_over.items()})
        rate = handed_over[max(handed_over)]["per_second"]
        row(
            "Provider batch API: 1M recipients handed over",
            f"{max(handed_over):,}",
            f"{seconds:,.0f} s ({rate:,.0f} recipients/s){basis}",
            f"< {PROVIDER_MAX_SECONDS_FOR_1M:.0f} s",
            _verdict(seconds < PROVIDER_MAX_SECONDS_FOR_1M, bool(basis)),
        )

    peaks: dict[int, float] = {}
    for size in sizes:
        for phase in ("smtp", "provider"):
            for worker in results["sizes"][str(size)].get(phase, {}).get("workers_peak_rss", []):
                peaks[size] = max(peaks.get(size, 0.0), worker["peak_rss_mb"])
    for size, peak in sorted(peaks.items()):
        row(
            "Worker peak RSS (VmHWM, largest process)",
            f"{size:,}",
            f"{peak:.0f} MB",
            f"< {WORKER_MAX_PEAK_MB:.0f} MB",
            _verdict(peak < WORKER_MAX_PEAK_MB),
        )
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        growth = peaks[large] / peaks[small] - 1
        complete = small <= 10_000 and large >= MILLION
        row(
            "Worker peak RSS growth",
            f"{small:,} → {large:,}",
            f"{growth:+.1%}",
            f"within {WORKER_MAX_GROWTH:.0%} (10k → 1M)",
            _verdict(abs(growth) <= WORKER_MAX_GROWTH) + ("" if complete else " (not up to 1M)"),
        )

    snapshots = {
        s: results["sizes"][str(s)]["smtp"]["campaign"]["snapshot_seconds"]
        for s in sizes
        if results["sizes"][str(s)].get("smtp")
    }
    for size, seconds in snapshots.items():
        row("Audience snapshot (campaign_send)", f"{size:,}", f"{seconds:.2f} s", "information", "n/a")
    if snapshots:
        seconds, basis = at_million(snapshots)
        row(
            "Audience snapshot of 1M",
            f"{max(snapshots):,}",
            f"{seconds:.1f} s{basis}",
            f"< {SNAPSHOT_MAX_SECONDS_FOR_1M:.0f} s",
            _verdict(seconds < SNAPSHOT_MAX_SECONDS_FOR_1M, bool(basis)),
        )

    for size in sizes:
        for phase in ("smtp", "provider"):
            queries = results["sizes"][str(size)].get(phase, {}).get("queries", {})
            if queries.get("batches"):
                row(
                    f"DB queries per batch ({phase}, {queries['batch_size_median']:.0f}/batch)",
                    f"{size:,}",
                    f"{queries['queries_per_batch']:.1f} "
                    f"(DB {queries['db_share_of_worker_time']:.0%} of worker time)",
                    "information",
                    "n/a",
                )

    signup = results.get("signup")
    if signup:
        ok = signup["per_second"] >= SIGNUP_MIN_PER_SECOND and signup["post_p99_ms"] < SIGNUP_MAX_P99_MS
        row(
            "Sign-ups (GET page + POST) via gunicorn",
            f"{signup['subscribers_before']:,}",
            f"{signup['per_second']:,.0f}/s, POST p50 {signup['post_p50_ms']:.0f} ms, "
            f"p99 {signup['post_p99_ms']:.0f} ms",
            f"≥ {SIGNUP_MIN_PER_SECOND}/s, p99 < {SIGNUP_MAX_P99_MS:.0f} ms",
            _verdict(ok),
        )
        if signup.get("server_cpu_ms_per_signup"):
            ms = signup["server_cpu_ms_per_signup"]
            row(
                "gunicorn CPU per sign-up (page + POST)",
                f"{signup['subscribers_before']:,}",
                f"{ms:.1f} ms (all {cores} cores: at most {cores * 1000 / ms:,.0f}/s)",
                "information",
                "n/a",
            )
        parts = {
            "gunicorn": signup.get("server_cpu_ms_per_signup"),
            "PostgreSQL": signup.get("database_cpu_ms_per_signup"),
            "visitors": signup.get("client_cpu_ms_per_signup"),
        }
        if all(parts.values()):
            spent = sum(v for v in parts.values() if v)
            budget = cores * 1000 / SIGNUP_MIN_PER_SECOND
            row(
                "CPU per sign-up, every process on the machine",
                "",
                " + ".join(f"{k} {v:.1f}" for k, v in parts.items())
                + f" = {spent:.1f} ms ({SIGNUP_MIN_PER_SECOND}/s on {cores} cores leaves {budget:.1f} ms)",
                "information",
                "n/a",
            )
        floor = signup.get("framework_floor") or {}
        if floor.get("server_cpu_ms_per_request"):
            ms = floor["server_cpu_ms_per_request"]
            row(
                'Floor: same gunicorn + Django, a view answering "ok"',
                "",
                f"{floor['per_second']:,.0f} requests/s, {ms:.2f} ms CPU per request "
                f"(a sign-up is 2 requests: at most {cores * 1000 / (2 * ms):,.0f}/s doing nothing else)",
                "information",
                "n/a",
            )
        row(
            "verify_ledger after sign-ups",
            "",
            "passed" if signup["verify_ledger_ok"] else "FAILED",
            "passes",
            _verdict(signup["verify_ledger_ok"]),
        )

    for size in sizes:
        pages = results["sizes"][str(size)].get("admin")
        if not pages:
            continue
        for name, page in pages.items():
            measured_at_million = size >= MILLION
            row(
                f"Admin: {name} (TTFB median)",
                f"{size:,}",
                f"{page['ttfb_median_ms']:.0f} ms (max {page['ttfb_max_ms']:.0f})",
                f"< {ADMIN_MAX_MS:.0f} ms at 1M",
                _verdict(page["ttfb_median_ms"] < ADMIN_MAX_MS)
                + ("" if measured_at_million else " (not at 1M)"),
            )
    return rows


def markdown(results: dict[str, Any], rows: list[dict[str, str]]) -> str:
    env = results["environment"]
    load = ", ".join(f"{x:.2f}" for x in env["load_average_at_start"])
    lines = [
        f"Measured {results['started_at']} on {env['cpu']} ({env['cores']} cores, {env['memory_gib']} GiB; "
        f"load at start {load}), Python {env['python']}, "
        f"Django {env['django']}, PostgreSQL {env['postgresql']}, Redis {env['redis']}; "
        f"{results['args']['workers']} Celery worker process(es), pool {results['args']['pool']}.",
        "",
        "| measure | subscribers | figure | target | result |",
        "|---|---:|---|---|---|",
    ]
    lines += [f"| {r['what']} | {r['size']} | {r['figure']} | {r['target']} | {r['result']} |" for r in rows]
    for note in results.get("notes", []):
        lines += ["", f"- {note}"]
    return "\n".join(lines) + "\n"


def console(rows: list[dict[str, str]]) -> str:
    widths = [max(len(r[k]) for r in rows) for k in ("what", "size", "figure", "target", "result")]
    out = []
    for r in rows:
        cells = [
            r[k].ljust(w) for k, w in zip(("what", "size", "figure", "target", "result"), widths, strict=True)
        ]
        out.append("  ".join(cells))
    return "\n".join(out)


def write(results: dict[str, Any], out: Path) -> list[dict[str, str]]:
    rows = targets(results)
    results["targets"] = rows
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(results, rows))
    return rows
