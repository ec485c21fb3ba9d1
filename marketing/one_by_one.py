"""One message per recipient over one connection of Django's email backend: SMTP, and the
providers that cannot personalise a batch themselves (see ``batching.supported``).

Over Django's SMTP backend each message is bytes from a frame made once per campaign copy
(``smtp_frames.smtp_frame``), written straight to its smtplib connection by ``sendmail``;
other backends get ``EmailMessage`` objects. The caller records what ``send_one_by_one``
settled (``send_outcomes``); nothing here touches the database.

Plain Python: no Celery, no request. Settings are read when called, never at import.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
from email.utils import formatdate, make_msgid

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

from marketing import batching, rendering, smtp_frames, tracking
from marketing.models import Delivery
from marketing.send_outcomes import Outcomes, Retries, refusal, retry_delay, short

logger = logging.getLogger(__name__)

_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def send_one_by_one(
    *,
    campaign_id: int,
    copies: tuple[rendering.PreparedCampaign, rendering.PreparedCampaign],
    to_send: list[tuple[int, int, rendering.Recipient]],
    outcomes: Outcomes,
    retry: Retries,
) -> None:
    """Send ``to_send`` (delivery id, attempts, recipient); ``copies`` is (plain, tracked).

    SMTP has no provider tracking to turn off; other backends' is turned off per message.
    """
    connection = get_connection()
    fast = type(connection) is SMTPBackend
    frames = [smtp_frames.smtp_frame(copy) for copy in copies] if fast else []
    link_maker = rendering.LinkMaker()
    date = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
    domain = rendering.sender_domain()
    try:
        connection.open()
        smtp = connection.connection if isinstance(connection, SMTPBackend) else None
        for index, (delivery_id, attempts, recipient) in enumerate(to_send):
            copy = bool(recipient.tracking_url)
            message_id = make_msgid(domain=domain)
            raw: bytes | None = None
            if fast:
                raw = frames[copy].message(recipient, link_maker=link_maker, message_id=message_id, date=date)
            message = None
            if raw is None:
                message = tracking.disable_provider_tracking(
                    rendering.build_message(copies[copy], recipient, connection=connection)
                )
                message.extra_headers["Message-ID"] = message_id
                # Comes back with the provider's webhook events (anymail metadata), as in a batch.
                message.metadata = {  # type: ignore[attr-defined]
                    batching.DELIVERY_ID: str(delivery_id),
                    batching.CAMPAIGN_ID: str(campaign_id),
                }
            try:
                if raw is not None and smtp is not None:
                    sendmail(smtp, frames[copy].sender, recipient.email, raw)
                elif message is not None:
                    message.send()
            except (AnymailRecipientsRefused, smtplib.SMTPRecipientsRefused) as exc:
                outcomes[delivery_id] = (Delivery.Status.FAILED, "", refusal(exc))
            except (AnymailAPIError, smtplib.SMTPException, OSError) as exc:
                delay = retry_delay(exc, attempts)
                if delay is None:
                    outcomes[delivery_id] = (Delivery.Status.FAILED, "", short(exc))
                    continue
                # The connection or provider is unwell: put back the rest of the batch too.
                for later_id, later_attempts, _ in to_send[index:]:
                    retry[later_id] = (later_attempts, delay)
                logger.warning("campaign %s: sending paused for %.0fs: %s", campaign_id, delay, short(exc))
                break
            else:
                provider_id = _provider_id(message) if message is not None else message_id
                outcomes[delivery_id] = (Delivery.Status.SENT, provider_id, "")
    finally:
        connection.close()


def sendmail(smtp: smtplib.SMTP, sender: str, to: str, raw: bytes) -> None:
    """``smtp.sendmail(sender, [to], raw)`` for two plain addresses (``smtp_frames.Frame``
    took only those), raising what it raises, without parsing both addresses again for
    every message (``smtplib.quoteaddr``, ~8% of a message's CPU in cProfile). Every line
    of ``raw`` goes out ending in CRLF, whatever it ended in.

    Where the server offers PIPELINING (RFC 2920; Postfix does), MAIL, RCPT and DATA go in
    one write and their replies are read together: two round trips a message instead of
    four, which is what a busy machine spends most of a batch waiting for.
    """
    smtp.ehlo_or_helo_if_needed()
    raw = _crlf(raw)
    options = f" size={len(raw)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    mail, rcpt = f"MAIL FROM:<{sender}>{options}", f"RCPT TO:<{to}>"
    if not (smtp.does_esmtp and smtp.has_extn("pipelining")):
        _check_envelope(smtp, smtp.docmd(mail), None, sender, to)
        _check_envelope(smtp, (250, b""), smtp.docmd(rcpt), sender, to)
        code, response = smtp.data(raw)
    else:
        smtp.send(f"{mail}\r\n{rcpt}\r\nDATA\r\n")
        replies = smtp.getreply(), smtp.getreply(), smtp.getreply()
        if replies[2][0] == 354 and (replies[0][0] != 250 or replies[1][0] not in (250, 251)):
            # RFC 2920 §3.1: the server took DATA anyway; end the empty message.
            smtp.send(".\r\n")
            smtp.getreply()
        _check_envelope(smtp, replies[0], replies[1], sender, to)
        if replies[2][0] != 354:
            _rset(smtp)
            raise smtplib.SMTPDataError(*replies[2])
        smtp.send(_data_block(raw))
        code, response = smtp.getreply()
    if code != 250:
        _rset(smtp)
        raise smtplib.SMTPDataError(code, response)


def _crlf(raw: bytes) -> bytes:
    """``raw`` with every line ending CRLF (RFC 5321 §2.3.8: no bare CR or LF), as
    ``smtplib.SMTP.sendmail`` makes a message given as text. A frame's message already is."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\r") == crlf and raw.count(b"\n") == crlf:
        return raw
    return _LINE_END.sub(b"\r\n", raw)


def _data_block(raw: bytes) -> bytes:
    """What follows a 354 reply to DATA, as ``smtplib.SMTP.data`` frames it: ``raw`` (lines
    already CRLF) dot-stuffed, then the end-of-data line."""
    # RFC 5321 §4.5.2: a line that starts with "." gets one more, which the receiver removes;
    # otherwise a line of "." alone would end the message there.
    body = _LEADING_DOT.sub(b"..", raw)
    # RFC 5321 §4.1.1.4: the data ends with CRLF.CRLF.
    return body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n"


def _check_envelope(
    smtp: smtplib.SMTP, mail: tuple[int, bytes], rcpt: tuple[int, bytes] | None, sender: str, to: str
) -> None:
    if mail[0] != 250:
        _rset(smtp)
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if rcpt is not None and rcpt[0] not in (250, 251):
        _rset(smtp)
        raise smtplib.SMTPRecipientsRefused({to: rcpt})


def _rset(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()


def _provider_id(message: object) -> str:
    status = getattr(message, "anymail_status", None)
    if status is not None and status.message_id:
        return str(status.message_id)
    return str(getattr(message, "extra_headers", {}).get("Message-ID", ""))
