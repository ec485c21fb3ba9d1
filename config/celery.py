"""The Celery application: configured from Django settings (``CELERY_*``)."""

import logging
import os
from typing import Any

from celery import Celery, signals

from config.log_filters import RedactPersonalData

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_worker_logs(logger: logging.Logger, **kwargs: Any) -> None:
    """Celery replaces the root logger's handlers with its own (``worker_hijack_root_logger``),
    dropping Django's console filter: put it back on each, so a worker's log (task retries
    quoting an SMTP refusal, tracebacks) carries no address, IP or token either."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactPersonalData) for f in handler.filters):
            handler.addFilter(RedactPersonalData())
