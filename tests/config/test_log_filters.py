"""No addresses, IPs or link tokens reach the logs."""

import logging

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
