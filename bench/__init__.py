"""``make bench``: throughput, memory and latency of the platform on this machine.

Run ``python -m bench --help`` (or ``make bench BENCH_ARGS=--help``). Every figure is
measured against PostgreSQL, Redis and real processes (Celery workers, gunicorn, Postfix's
``smtp-sink``, a local Mailgun-compatible API) on loopback; results go to
``var/bench/results.json`` and ``var/bench/results.md``. Benchmarks are not tests: nothing
here asserts a timing, it reports each figure next to its target.

This package must stay importable without Django: ``bench.peer`` runs in another venv.
"""
