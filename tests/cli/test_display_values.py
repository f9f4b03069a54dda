"""Nothing a server sends may crash the CLI's output, in any of its three modes.

A decoded payload can hold what no well-behaved server sends: integers too long
for ``str()``, NaN and infinities, lone surrogates (stdlib json decodes ``"\\ud800"``),
non-string keys (ETF maps), deep nesting. Each still prints one line.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest

from gateway_cli.display import Display, EventRecord, Mode, summarize


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


HUGE = -(2**20_000)  # a 20,000-bit negative id: str() refuses it (int_max_str_digits)

NASTY: list[Any] = [
    {"id": HUGE, "channel_id": HUGE, "guild_id": HUGE, "user_id": HUGE, "content": "x"},
    {"member_count": 2**20_000, "name": None, "id": HUGE},
    {"nan": math.nan, "inf": math.inf, "-inf": -math.inf},
    {"content": "\ud800 lone", "author": {"username": "\udfff"}, "channel_id": "1"},
    {1: "int key", None: "null key", 2.5: "float key", False: "bool key"},
    {"deep": _nested(5_000)},
    _nested(5_000),
    HUGE,
    [HUGE, math.nan],
]
NAMES = ["MESSAGE_CREATE", "GUILD_CREATE", "GUILD_DELETE", "READY", "X_\ud800", "TYPING_START"]


class _StrictStream(io.StringIO):
    """A text stream that refuses what a UTF-8 terminal or pipe refuses (lone surrogates)."""

    def write(self, text: str) -> int:
        text.encode("utf-8")
        return super().write(text)


@pytest.mark.parametrize("mode", ["jsonl", "plain", "human"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("data", NASTY, ids=range(len(NASTY)))
def test_any_decoded_value_prints_one_line(mode: Mode, name: str, data: Any) -> None:
    out, err = _StrictStream(), _StrictStream()
    display = Display(out, err, mode=mode, status=True)
    display.start([0], 0.0, where="test")
    display.event(EventRecord(0, name, data, HUGE), 1.0)
    display.latency(0, math.nan)
    display.tick(10.0)
    display.finish(11.0, reason="done")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    if mode == "jsonl":
        record = json.loads(lines[0])  # strict JSON: no NaN, no Infinity
        assert record["shard"] == 0
    assert err.getvalue()


@pytest.mark.parametrize("data", NASTY, ids=range(len(NASTY)))
def test_summarize_never_raises(data: Any) -> None:
    for name in NAMES:
        assert isinstance(summarize(name, data), str)


def test_jsonl_keeps_ordinary_values_as_they_are() -> None:
    record = EventRecord(2, "X", {"id": "1", "n": 3, "f": 1.5, "ok": True, "none": None}, 7)
    assert json.loads(record.to_json()) == {
        "shard": 2,
        "seq": 7,
        "event": "X",
        "data": {"id": "1", "n": 3, "f": 1.5, "ok": True, "none": None},
    }


def test_jsonl_writes_unrepresentable_numbers_as_strings() -> None:
    line = EventRecord(0, "X", {"big": HUGE, "nan": math.nan, "inf": -math.inf}, None).to_json()
    data = json.loads(line)["data"]
    assert data["nan"] == "NaN"
    assert data["inf"] == "-Infinity"
    assert data["big"] == hex(HUGE)
