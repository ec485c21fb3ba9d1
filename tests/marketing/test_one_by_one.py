"""The SMTP wire of one-by-one sending, against a real (aiosmtpd) server."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from marketing import one_by_one
from tests.conftest import SMTPServer, free_port

# Lines a server must not take for the end of the data or lose a dot of (RFC 5321 §4.5.2).
BODY = b".\r\n..\r\n.starts with a dot\r\n. and a space\r\nends with a dot.\r\n.\r\n"
HEAD = b"From: news@example.com\r\nTo: ann@example.org\r\nSubject: Dots\r\n\r\n"


class PipeliningServer(SMTPServer):
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


@pytest.fixture(params=[False, True], ids=["without pipelining", "with pipelining"])
def smtp(request) -> Iterator[tuple[smtplib.SMTP, SMTPServer]]:
    from aiosmtpd.controller import Controller

    server = (PipeliningServer if request.param else SMTPServer)(host="127.0.0.1", port=free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    client = smtplib.SMTP(server.host, server.port, timeout=10)
    try:
        client.ehlo()
        assert client.has_extn("pipelining") == request.param
        yield client, server
    finally:
        client.quit()
        controller.stop()


def test_lines_starting_with_a_dot_arrive_intact(smtp):
    client, server = smtp
    one_by_one.sendmail(client, "news@example.com", "ann@example.org", HEAD + BODY)
    # A second message on the same connection: the first one's data ended where it should.
    one_by_one.sendmail(client, "news@example.com", "bob@example.org", HEAD + b"second\r\n")
    first, second = server.wait_for(2)
    assert first.raw == HEAD + BODY
    assert (second.rcpt_tos, second.raw) == (["bob@example.org"], HEAD + b"second\r\n")


def test_bare_line_ends_go_out_as_crlf_and_a_last_line_is_ended(smtp):
    client, server = smtp
    one_by_one.sendmail(client, "news@example.com", "ann@example.org", b"Subject: x\n\n.one\r.two\r\n.")
    [mail] = server.wait_for(1)
    assert mail.raw == b"Subject: x\r\n\r\n.one\r\n.two\r\n.\r\n"
