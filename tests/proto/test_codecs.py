"""Codecs: JSON (orjson and stdlib) and ETF decode one event to the *same* Python value.

The corpus is encoded independently of our codecs: ``json.dumps`` for JSON, and
``erlpack.pack`` for ETF with snowflakes as 64-bit integers where Discord's ETF
encoder sends integers (every snowflake-typed field: ``id``, ``*_id``, ``*_ids``,
``roles``, ``mention_roles``, ``not_found``...).
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
from typing import Any

import erlpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_proto.codecs import (
    MAX_OUTBOUND_SIZE,
    SNOWFLAKE_THRESHOLD,
    EtfCodec,
    JsonCodec,
    make_codec,
)
from gateway_proto.errors import DecodeError, InvalidCommandError
from gateway_testing.corpus import everyday_events, guild_ids_for_shard, sample_payloads

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.s3cr3t-t0ken-value-xxxxxxxxxxxxxxxxxx"
SNOWFLAKE_LISTS = {"roles", "mention_roles", "not_found", "exempt_roles", "exempt_channels"}


def _snowflake_key(key: str) -> bool:
    return key == "id" or key.endswith("_id")


def _as_discord_etf(value: Any, key: str = "") -> Any:
    """What Discord's ETF encoder sends: snowflake-typed fields as integers.

    Keyed on field names (the schema), independent of the codec's magnitude rule.
    """
    if isinstance(value, dict):
        return {k: _as_discord_etf(v, k) for k, v in value.items()}
    if isinstance(value, list):
        as_ids = key in SNOWFLAKE_LISTS or key.endswith("_ids")
        return [_as_discord_etf(v, key if as_ids else "") for v in value]
    snowflake_field = _snowflake_key(key) or key in SNOWFLAKE_LISTS or key.endswith("_ids")
    if snowflake_field and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _samples() -> list[tuple[str, Any]]:
    samples = list(sample_payloads().items())
    ids = guild_ids_for_shard(0, 1, 2, seed=3)
    samples += everyday_events(seed=3, count=300, guild_ids=ids, members_per_guild=20)
    return samples


SAMPLES = _samples()


def _envelope(name: str, d: Any, seq: int) -> dict[str, Any]:
    return {"op": 0, "d": d, "s": seq, "t": name}


def test_the_corpus_has_the_important_events() -> None:
    names = {name for name, _ in SAMPLES}
    assert {"READY", "GUILD_CREATE", "MESSAGE_CREATE", "PRESENCE_UPDATE"} <= names
    assert {"GUILD_MEMBERS_CHUNK", "INTERACTION_CREATE", "VOICE_STATE_UPDATE"} <= names


def test_the_etf_fixture_really_sends_integers() -> None:
    """The ETF side is not trivially equal: it carries snowflakes as big integers."""
    ready = dict(SAMPLES)["READY"]
    packed = _as_discord_etf(ready)
    assert isinstance(packed["user"]["id"], int)
    assert packed["user"]["id"] > SNOWFLAKE_THRESHOLD
    assert isinstance(ready["user"]["id"], str)


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib"])
def test_json_and_etf_decode_to_equal_values(use_orjson: bool) -> None:
    json_codec = JsonCodec(use_orjson)
    etf_codec = EtfCodec()
    for seq, (name, d) in enumerate(SAMPLES, start=1):
        envelope = _envelope(name, d, seq)
        from_json = json_codec.decode(json.dumps(envelope).encode())
        from_etf = etf_codec.decode(erlpack.pack(_as_discord_etf(envelope)))
        assert from_json == from_etf, name
        assert from_json == (0, d, seq, name)  # and both equal the source value


def test_ids_sent_as_strings_over_etf_stay_strings() -> None:
    """ETF may also carry snowflakes as binaries (map keys such as resolved.messages)."""
    envelope = _envelope("INTERACTION_CREATE", {"resolved": {"messages": {"1158": {}}}}, 1)
    assert EtfCodec().decode(erlpack.pack(envelope)) == JsonCodec().decode(
        json.dumps(envelope).encode()
    )


def test_small_integer_ids_are_equal_in_both_encodings() -> None:
    d = {"guild_id": "1158427385231155200", "not_found": [12345, "1158427385231155299"]}
    envelope = _envelope("GUILD_MEMBERS_CHUNK", d, 3)
    from_etf = EtfCodec().decode(erlpack.pack(_as_discord_etf(envelope)))
    from_json = JsonCodec().decode(json.dumps(envelope).encode())
    assert from_etf == from_json
    assert from_json[1]["not_found"] == [12345, "1158427385231155299"]


def test_integers_that_are_not_snowflakes_stay_integers() -> None:
    d = {"answer_id": 2, "since": 1_700_000_000_000, "flags": 1 << 40, "id": 7}
    assert EtfCodec().decode(erlpack.pack(_envelope("X", d, 1)))[1] == d


def test_the_threshold() -> None:
    d = {"a": SNOWFLAKE_THRESHOLD, "b": SNOWFLAKE_THRESHOLD + 1}
    assert EtfCodec().decode(erlpack.pack(_envelope("X", d, 1)))[1] == {
        "a": SNOWFLAKE_THRESHOLD,
        "b": str(SNOWFLAKE_THRESHOLD + 1),
    }


# -- ETF details ---------------------------------------------------------------------


def _atom(name: str) -> bytes:
    raw = name.encode()
    return b"s" + bytes([len(raw)]) + raw  # SMALL_ATOM_EXT


def _binary(text: str) -> bytes:
    raw = text.encode()
    return b"m" + struct.pack(">I", len(raw)) + raw  # BINARY_EXT


def _map(*pairs: tuple[bytes, bytes]) -> bytes:
    return b"t" + struct.pack(">I", len(pairs)) + b"".join(k + v for k, v in pairs)


def test_etf_atom_keys_and_atom_values_are_normalised() -> None:
    """A hand-built term: atom keys (op, d, s, t), t as an atom, nil/true/false atoms."""
    term = b"\x83" + _map(
        (_atom("op"), b"a\x00"),
        (_atom("s"), b"a\x05"),
        (_atom("t"), _atom("MESSAGE_CREATE")),
        (
            _atom("d"),
            _map(
                (_binary("a"), _atom("nil")),
                (_binary("b"), _atom("true")),
                (_binary("c"), _atom("false")),
                (_binary("kind"), _atom("custom")),
                (_binary("pair"), b"h\x02a\x01a\x02"),  # SMALL_TUPLE_EXT {1, 2}
                (_binary("bytes"), b"k\x00\x03\x01\x02\x03"),  # STRING_EXT: small ints
            ),
        ),
    )
    op, d, s, t = EtfCodec().decode(term)
    assert (op, s, t) == (0, 5, "MESSAGE_CREATE")
    assert type(t) is str
    assert d == {
        "a": None,
        "b": True,
        "c": False,
        "kind": "custom",
        "pair": [1, 2],
        "bytes": [1, 2, 3],
    }
    assert all(type(k) is str for k in d)


def test_etf_binary_that_is_not_utf8() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        EtfCodec().decode(erlpack.pack({"op": 0, "d": b"\xff\xfe"}))


@pytest.mark.parametrize("data", [b"", b"\x83", b"\x83t\x00\x00\x00\x09", b"not etf", b"\x83z"])
def test_etf_garbage(data: bytes) -> None:
    with pytest.raises(DecodeError):
        EtfCodec().decode(data)


def _keys_are_binaries(value: Any) -> bool:
    if isinstance(value, dict):
        return all(type(k) is bytes and _keys_are_binaries(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_keys_are_binaries(v) for v in value)
    return True


def test_etf_outbound_keys_are_binaries_never_atoms() -> None:
    """Atom keys get close 4002 from Discord: every key must be a BINARY_EXT."""
    d = {"token": TOKEN, "properties": {"os": "linux"}, "shard": [0, 1], "presence": None}
    encoded = EtfCodec().encode(2, d)
    assert encoded[:1] == b"\x83"
    assert _keys_are_binaries(erlpack.unpack(encoded))
    assert b"s\x02op" not in encoded
    assert b"m\x00\x00\x00\x02op" in encoded
    assert EtfCodec().decode(encoded) == (2, d, None, None)


def test_etf_nil_true_false_go_out_as_atoms() -> None:
    encoded = EtfCodec().encode(1, None)
    assert _atom("nil") in encoded


# -- JSON details --------------------------------------------------------------------


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib"])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[1, 2]",
        b'"op"',
        b"{}",
        b'{"op": "0"}',
        b'{"op": true}',
        b'{"op": 0, "s": "1"}',
        b'{"op": 0, "t": 5}',
        b'{"op": 0, "d": "\xff"}',
        b"[" * 100_000,
    ],
)
def test_json_malformed_envelopes(use_orjson: bool, data: bytes) -> None:
    with pytest.raises(DecodeError):
        JsonCodec(use_orjson).decode(data)


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib"])
def test_json_minimal_envelope(use_orjson: bool) -> None:
    assert JsonCodec(use_orjson).decode(b'{"op": 11}') == (11, None, None, None)


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib"])
def test_json_encode_is_compact_utf8(use_orjson: bool) -> None:
    encoded = JsonCodec(use_orjson).encode(3, {"status": "dnd", "activities": [{"name": "é"}]})
    assert json.loads(encoded) == {"op": 3, "d": {"status": "dnd", "activities": [{"name": "é"}]}}
    assert b" " not in encoded
    assert "é".encode() in encoded


@pytest.mark.parametrize(
    "codec", [JsonCodec(True), JsonCodec(False), EtfCodec()], ids=["orjson", "stdlib", "etf"]
)
def test_outbound_size_limit_never_leaks_the_payload(codec: JsonCodec | EtfCodec) -> None:
    d = {"token": TOKEN, "padding": "x" * MAX_OUTBOUND_SIZE}
    with pytest.raises(InvalidCommandError) as info:
        codec.encode(2, d)
    message = str(info.value)
    assert "4096" in message
    assert TOKEN not in message
    assert "xxxx" not in message


@pytest.mark.parametrize(
    "codec", [JsonCodec(True), JsonCodec(False), EtfCodec()], ids=["orjson", "stdlib", "etf"]
)
def test_outbound_exactly_at_the_limit(codec: JsonCodec | EtfCodec) -> None:
    base = len(codec.encode(8, {"nonce": ""}))
    encoded = codec.encode(8, {"nonce": "n" * (MAX_OUTBOUND_SIZE - base)})
    assert len(encoded) == MAX_OUTBOUND_SIZE


def test_unencodable_values() -> None:
    with pytest.raises(InvalidCommandError):
        JsonCodec(False).encode(3, {"x": object()})
    with pytest.raises(InvalidCommandError):
        JsonCodec(True).encode(3, {"x": object()})
    with pytest.raises(InvalidCommandError):
        EtfCodec().encode(3, {"x": object()})


def test_make_codec() -> None:
    assert isinstance(make_codec("json"), JsonCodec)
    fast, slow = make_codec("json"), make_codec("json", use_orjson=False)
    assert isinstance(fast, JsonCodec)
    assert isinstance(slow, JsonCodec)
    assert fast.uses_orjson  # orjson is installed in the test environment
    assert not slow.uses_orjson
    assert isinstance(make_codec("etf"), EtfCodec)


def test_missing_erlpack_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "erlpack", None)
    with pytest.raises(ImportError, match=r"spectacles-gateway\[etf\]"):
        EtfCodec()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_json_values, st.integers(0, 2**31), st.one_of(st.none(), st.text(max_size=10)))
def test_any_value_decodes_equal_in_all_codecs(d: Any, seq: int, name: str | None) -> None:
    op = 0 if name is not None else 11  # a dispatch needs a name; other ops may have none
    envelope = {"op": op, "d": d, "s": seq, "t": name}
    expected = (op, d, seq, name)
    assert JsonCodec(True).decode(json.dumps(envelope).encode()) == expected
    assert JsonCodec(False).decode(json.dumps(envelope).encode()) == expected
    assert EtfCodec().decode(erlpack.pack(envelope)) == expected


# -- the pure-Python ETF decoder's less common tags ----------------------------------


def test_etf_deep_nesting_is_a_decode_error_not_a_crash() -> None:
    """erlpack.unpack segfaults on this; our decoder refuses it."""
    depth = 200_000
    term = b"\x83" + b"l\x00\x00\x00\x01" * depth + b"j" * (depth + 1)
    with pytest.raises(DecodeError, match="nested too deeply"):
        EtfCodec().decode(term)


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        (b"o\x00\x00\x00\x09\x00" + (2**70).to_bytes(9, "little"), str(2**70)),  # LARGE_BIG
        (b"n\x08\x01" + (2**60).to_bytes(8, "little"), str(-(2**60))),  # negative SMALL_BIG
        (b"b\xff\xff\xff\xfe", -2),  # INTEGER_EXT, signed
        (b"c" + b"1.50000000000000000000e+00".ljust(31, b"\x00"), 1.5),  # old FLOAT_EXT
        (b"F" + struct.pack(">d", 2.25), 2.25),  # NEW_FLOAT_EXT
        (b"i\x00\x00\x00\x02a\x01a\x02", [1, 2]),  # LARGE_TUPLE_EXT
        (b"d\x00\x04true", True),  # ATOM_EXT
        (b"v\x00\x03nil", None),  # ATOM_UTF8_EXT
        (b"w\x03abc", "abc"),  # SMALL_ATOM_UTF8_EXT
        (b"l\x00\x00\x00\x01a\x01a\x02", [1, 2]),  # an improper list keeps its tail
        (b"t\x00\x00\x00\x01a\x01a\x02", {1: 2}),  # a non-binary key goes the slow way
    ],
)
def test_etf_less_common_tags(term: bytes, expected: Any) -> None:
    assert EtfCodec().loads(b"\x83" + term) == expected


def test_etf_compressed_term() -> None:
    import zlib

    inner = erlpack.pack({"op": 11, "d": None})[1:]
    term = b"\x83P" + len(inner).to_bytes(4, "big") + zlib.compress(inner)
    assert EtfCodec().decode(term) == (11, None, None, None)
    with pytest.raises(DecodeError, match="exceeds the cap"):
        EtfCodec(max_size=4).decode(term)
    wrong = b"\x83P" + (len(inner) + 5).to_bytes(4, "big") + zlib.compress(inner)
    with pytest.raises(DecodeError, match="wrong size"):
        EtfCodec().decode(wrong)


@pytest.mark.parametrize(
    "term",
    [
        b"\x83m\x00\x00\x00\x09abc",  # a truncated binary
        b"\x83t\x00\x00\x00\x01m\x00\x00\x00\x09ab",  # a truncated key
        b"\x83a\x01a\x02",  # trailing bytes
        b"\x83Z",  # an unknown tag
        b"\x83s\x05ab",  # a truncated atom
        b"\x83d\x00\x02\xff\xfe",  # an atom that is not UTF-8
    ],
)
def test_etf_malformed_terms(term: bytes) -> None:
    with pytest.raises(DecodeError):
        EtfCodec().loads(term)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_etf_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        EtfCodec().loads(b"\x83" + data)
