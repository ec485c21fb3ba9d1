"""Loaded by pytest before Django (``-p tests.env`` in pyproject): development defaults,
so a bare ``pytest`` works as ``make test`` does. Values already set win."""

import os

os.environ.setdefault("DEBUG", "1")
