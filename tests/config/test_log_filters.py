"""No addresses, IPs or link tokens reach the logs."""

import logging
import sys

from config.log_filters import RedactPersonalData, redact


def test_addresses_tokens_and_ips_are_masked():
    line = (
        '"GET /preferences/MQ.1:1sXyZ:abcDEF-123_xyz/ HTTP/1.1" 200 from 203.0.113.7 for ada+news@example.org'
    )
    assert redact(line) == '"GET /preferences/[token]/ HTTP/1.1" 200 from [ip] for [address]'
    assert redact("POST /u/Ab.C:1t:sig/ 200") == "POST /u/[token]/ 200"
    assert redact("550 5.1.1 <bob@bücher.example> unknown user") == "550 5.1.1 <[address]> unknown user"
    assert redact("campaign 12: 200 sent, batch 3") == "campaign 12: 200 sent, batch 3"


def test_the_filter_rewrites_formatted_records(caplog):
    logger = logging.getLogger("tests.redaction")
    handler_filter = RedactPersonalData()
    record = logger.makeRecord(
        "tests", logging.INFO, __file__, 1, "refused %s: %s", ("eve@example.net", "550"), None
    )
    assert handler_filter.filter(record) is True
    assert record.getMessage() == "refused [address]: 550"


def test_the_console_handler_carries_the_filter(settings):
    assert "personal_data" in settings.LOGGING["handlers"]["console"]["filters"]


def test_ipv6_addresses_and_tracking_tokens_are_masked_but_times_stay():
    assert redact("from 2001:db8::bb and ::1 and fe80::1") == "from [ip] and [ip] and [ip]"
    assert redact("2001:0db8:85a3:0000:0000:8a2e:0370:7334 ok") == "[ip] ok"
    assert redact("mapped ::ffff:192.0.2.1 here") == "mapped [ip] here"
    assert redact("GET /t/AB:sig-123/2/ 302") == "GET /t/[token]/2/ 302"
    assert redact("sent at 12:30:45 by std::mail") == "sent at 12:30:45 by std::mail"


def test_tracebacks_are_masked_too():
    logger = logging.getLogger("tests.redaction")
    try:
        raise ValueError("550 <bob@example.net> refused from 2001:db8::7")
    except ValueError:
        record = logger.makeRecord("tests", logging.ERROR, __file__, 1, "send failed", (), sys.exc_info())
    RedactPersonalData().filter(record)
    text = logging.Formatter().format(record)
    assert "bob@example.net" not in text and "2001:db8::7" not in text
    assert "550 <[address]> refused from [ip]" in text


def test_celery_worker_handlers_get_the_filter():
    from celery import signals

    logger = logging.getLogger("tests.celery-like")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        signals.after_setup_logger.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None)
        assert any(isinstance(f, RedactPersonalData) for f in handler.filters)
    finally:
        logger.removeHandler(handler)
