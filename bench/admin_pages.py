"""Time to first byte of the admin pages staff open most, logged in as the seeded ``admin``.

The password is the one ``seed_demo`` keeps in ``<VAR_DIR>/demo-credentials.json``. Each page
is fetched once to warm up, then ``repeat`` times over one keep-alive connection; the
median and the slowest are reported.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.web import Browser, csrf_token


def login(port: int, credentials: Path) -> Browser:
    password = json.loads(credentials.read_text())["password"]
    browser = Browser(port)
    page = browser.request("GET", "/admin/login/?next=/admin/")
    answer = browser.request(
        "POST",
        "/admin/login/?next=/admin/",
        {
            "csrfmiddlewaretoken": csrf_token(page.body),
            "username": "admin",
            "password": password,
            "next": "/admin/",
        },
    )
    if answer.status != 302 or "sessionid" not in browser.cookies:
        raise RuntimeError(f"admin login failed: HTTP {answer.status}")
    return browser


def measure(port: int, credentials: Path, pages: dict[str, str], *, repeat: int) -> dict[str, Any]:
    browser = login(port, credentials)
    results: dict[str, Any] = {}
    try:
        for name, path in pages.items():
            first = browser.request("GET", path)
            if first.status != 200:
                raise RuntimeError(f"{path}: HTTP {first.status}")
            ttfb = [browser.request("GET", path).ttfb * 1000 for _ in range(repeat)]
            results[name] = {
                "path": path,
                "bytes": len(first.body),
                "first_ms": round(first.ttfb * 1000, 1),
                "ttfb_median_ms": round(statistics.median(ttfb), 1),
                "ttfb_max_ms": round(max(ttfb), 1),
            }
    finally:
        browser.close()
    return results
