"""The payload types at run time: complete, introspectable, and never on the hot path."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import typing
from pathlib import Path

from typing_extensions import is_typeddict

from gateway_proto import payloads

ROOT = Path(__file__).resolve().parents[2]


def test_every_dispatch_name_has_an_exported_payload_type() -> None:
    for name, type_name in payloads.DISPATCH_EVENTS.items():
        assert name == name.upper()
        assert type_name in payloads.__all__, name
        payload = getattr(payloads, type_name)
        assert is_typeddict(payload), name
        typing.get_type_hints(payload)  # resolves: usable by validators at run time


def test_optional_fields_are_optional_at_run_time_too() -> None:
    # NotRequired must survive class creation (no string annotations in these modules).
    assert "guild_id" in payloads.MessageCreate.__optional_keys__
    assert {"id", "content", "author"} <= payloads.MessageCreate.__required_keys__
    assert payloads.PartialUser.__required_keys__ == {"id"}
    assert "unavailable" in payloads.GuildCreate.__optional_keys__
    assert {"members", "id", "name"} <= payloads.GuildCreate.__required_keys__


def test_generated_overloads_are_current() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_typed_events.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.main(["--check"]) == 0, "run: python scripts/gen_typed_events.py"


def test_drivers_do_not_import_the_payload_types_at_run_time() -> None:
    code = (
        "import sys, gateway_anyio, gateway_sync;"
        "print(sorted(m for m in sys.modules if m.startswith('gateway_proto.payloads')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
