"""The local outbox: an email backend that writes ``.eml`` files, and staff pages to read them.

Used by default (``EMAIL_URL=outbox://``) so the platform runs with no mail server, and
every process (web, workers) delivers to the same folder.
"""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage as ParsedMessage
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

_NAME = re.compile(r"^[0-9TZ\-]+-[0-9a-f]{32}\.eml$")
# Every email sent is personal data (addresses, names) and holds working links (a
# preferences link is a credential): the outbox is for those who may see evidence, i.e.
# Compliance and superusers, never Marketers.
OUTBOX_PERMISSION = "subscribers.view_consent_evidence"


def outbox_dir() -> Path:
    folder = settings.OUTBOX_DIR or Path(settings.VAR_DIR) / "outbox"
    return Path(folder)


class OutboxBackend(BaseEmailBackend):
    """Writes each message to ``OUTBOX_DIR/<utc time>-<uuid>.eml`` atomically."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        folder = outbox_dir()
        folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = folder / f"{stamp}-{uuid.uuid4().hex}.eml"
            partial = target.with_suffix(".part")
            partial.write_bytes(message.message().as_bytes())
            partial.rename(target)  # readers never see half a message
            sent += 1
        return sent


def read_message(path: Path) -> ParsedMessage:
    with path.open("rb") as fh:
        # policy.default makes the parser return email.message.EmailMessage objects.
        return cast(ParsedMessage, email.message_from_binary_file(fh, policy=email.policy.default))


def _parts(message: ParsedMessage) -> dict[str, Any]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return {
        "text": text.get_content() if text else "",
        "html": html.get_content() if html else "",
    }


def _may_read(request: HttpRequest) -> None:
    if not request.user.has_perm(OUTBOX_PERMISSION):
        raise PermissionDenied


@staff_member_required
def message_list(request: HttpRequest) -> HttpResponse:
    _may_read(request)
    files = sorted(outbox_dir().glob("*.eml"), reverse=True) if outbox_dir().exists() else []
    page = Paginator(files, 50).get_page(request.GET.get("page"))
    rows = []
    for path in page.object_list:
        msg = read_message(path)
        rows.append({"name": path.name, "to": msg["To"], "subject": msg["Subject"], "date": msg["Date"]})
    return render(request, "outbox/list.html", {"page": page, "rows": rows, "folder": outbox_dir()})


@staff_member_required
def message_detail(request: HttpRequest, name: str) -> HttpResponseBase:
    _may_read(request)
    path = outbox_dir() / name
    if not _NAME.match(name) or not path.is_file():
        raise Http404("No such message in the outbox.")
    if request.GET.get("raw"):
        return FileResponse(path.open("rb"), content_type="message/rfc822", as_attachment=True, filename=name)
    msg = read_message(path)
    return render(
        request,
        "outbox/detail.html",
        {"name": name, "headers": list(msg.items()), **_parts(msg)},
    )
