"""The real WSGI server (gunicorn, as in production) and a small keep-alive HTTP client."""

from __future__ import annotations

import http.client
import re
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from bench.config import ROOT, Config
from bench.procs import Child, Supervisor, free_port, port_open, wait_until

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def start_gunicorn(
    supervisor: Supervisor,
    config: Config,
    *,
    workers: int,
    threads: int,
    worker_class: str = "gthread",
    app: str = "config.wsgi:application",
    **env: str,
) -> tuple[Child, int]:
    """gunicorn on a free loopback port: gthread workers keep connections alive; sync ones
    (one request at a time, a connection each) cost less CPU a request."""
    port = free_port()
    command = [
        str(config.python),
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads),
        "--keep-alive",
        "30",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
    ]
    child = supervisor.start("gunicorn", command, env=config.app_env(**env), cwd=ROOT)
    wait_until(lambda: port_open(port), timeout=60, what="gunicorn to listen")
    return child, port


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    ttfb: float  # seconds from sending the request to the status line and headers
    total: float


@dataclass
class Browser:
    """One keep-alive connection and its cookies (enough for CSRF and the admin session)."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Response:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Host": f"127.0.0.1:{self.port}", "User-Agent": "permission-mail-bench/1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            ttfb = time.perf_counter() - started
            content = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        total = time.perf_counter() - started
        for value in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie(value)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        if response.will_close:
            self.close()
        return Response(response.status, response.headers, content, ttfb, total)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def csrf_token(body: bytes) -> str:
    match = CSRF_INPUT.search(body.decode("utf-8", "replace"))
    if not match:
        raise RuntimeError("no csrfmiddlewaretoken in the page")
    return match.group(1)
