"""Token redaction: the token goes wherever it stands as a token, and nothing else does.

A short test token ("t") must not turn ``connection closed`` into
``connec[REDACTED]ion closed``; a real token (long) is removed wherever it appears,
even glued to other text; a short one wherever it stands as a whole token: after
``Bot ``, inside JSON, in a URL's query, at the start or the end of the text.
"""

from __future__ import annotations

import json
import logging

import pytest

from gateway_proto.driver_support import RedactingFilter, ShardLogger, redact

REAL = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.s3cr3t-t0ken-value-xxxxxxxxxxxxxxxxxx"


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        ("connection closed", "t", "connection closed"),
        ("connection closed: tt", "t", "connection closed: tt"),
        ("heartbeat sent", "test", "heartbeat sent"),
        ("protest-tested attestation", "test", "protest-tested attestation"),
        ("t", "t", "[REDACTED]"),
        ("Authorization: Bot t", "t", "Authorization: Bot [REDACTED]"),
        ('{"token": "t", "intents": 1}', "t", '{"token": "[REDACTED]", "intents": 1}'),
        ("wss://h/?token=t&v=10", "t", "wss://h/?token=[REDACTED]&v=10"),
        (
            "t at the start, t at the end: t",
            "t",
            "[REDACTED] at the start, [REDACTED] at the end: [REDACTED]",
        ),
        ("user t:pw@host", "t", "user [REDACTED]:pw@host"),
        ("token test-token.", "test-token", "token [REDACTED]."),
        # Long enough to be a real token: removed wherever it appears, glued or not.
        (f"Bot{REAL}x", REAL, "Bot[REDACTED]x"),
        (f"a{REAL}{REAL}", REAL, "a[REDACTED][REDACTED]"),
    ],
)
def test_redact(text: str, secret: str, expected: str) -> None:
    assert redact(text, [secret]) == expected


def test_a_token_in_json_from_dumps_is_redacted_both_lengths() -> None:
    for secret in ("t", "short-tok", REAL):
        text = json.dumps({"op": 2, "d": {"token": secret, "note": "it went out"}})
        out = redact(text, [secret])
        assert secret not in json.loads(out)["d"]["token"]
        assert json.loads(out)["d"]["note"] == "it went out"


def test_empty_secrets_change_nothing() -> None:
    assert redact("connection closed", ["", "t"]) == "connection closed"


def test_the_shard_logger_keeps_words_that_contain_a_short_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = ShardLogger(logging.getLogger("test.redaction"), "t")
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        log.info("connection closed: %s", "Bot t")
    assert caplog.records[-1].getMessage() == "connection closed: Bot [REDACTED]"


def test_the_filter_keeps_words_and_removes_the_token() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "sent %s to connection", ("t",), None
    )
    assert RedactingFilter(["t"]).filter(record)
    assert record.getMessage() == "sent [REDACTED] to connection"
