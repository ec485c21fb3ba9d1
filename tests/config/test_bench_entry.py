"""``make bench`` starts in a process without Django set up (and ``bench.peer`` runs in a venv
without this project): importing the bench must not import a model."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings


def test_the_bench_starts_and_explains_itself_without_django():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "--full" in run.stdout and "smtp,peer,raw,provider,admin,signup" in run.stdout
