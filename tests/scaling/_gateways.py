"""Helpers for tests that run ``spectacles-gateway run`` processes against a threaded fake.

Each child is a real ``python -m gateway_cli run --jsonl`` process: its stdout (a
file) is the record of every event it printed, and the printed events are its
checkpoint (a saved session never goes past them), so the union of the records of
a process and of its successor must hold every event the fake sent, in order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

import gateway_anyio
from gateway_redis import Keys
from gateway_redis.worker import unpack_meta
from gateway_testing import ThreadedFakeGateway

TOKEN = "scaling-token"
SRC = str(Path(gateway_anyio.__file__).resolve().parents[1])


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


@dataclass
class Child:
    """One ``spectacles-gateway run`` process and its output files."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path
    name: str
    _lines: int = 0
    _records: list[dict[str, object]] = field(default_factory=list)

    def records(self) -> list[dict[str, object]]:
        """Every event the child printed so far (complete lines only)."""
        text = self.out.read_text(encoding="utf-8")
        lines = text.split("\n")[:-1]  # the last one may be half written
        for line in lines[self._lines :]:
            self._records.append(json.loads(line))
        self._lines = len(lines)
        return self._records

    def seqs(self, shard_id: int) -> list[int]:
        """The sequence numbers printed for a shard, in order."""
        return [int(str(r["seq"])) for r in self.records() if r["shard"] == shard_id]

    def saw(self, shard_id: int, event: str) -> bool:
        """Whether the child printed ``event`` for ``shard_id``."""
        return any(r["shard"] == shard_id and r["event"] == event for r in self.records())

    def stderr(self) -> str:
        """What the child wrote on stderr."""
        return self.err.read_text(encoding="utf-8", errors="replace")


@contextmanager
def gateways(tmp: Path) -> Iterator[Callable[..., Child]]:
    """Yield a starter of children; every child still running is killed on exit."""
    children: list[Child] = []

    def start(name: str, redis_url: str, api_base: str, *args: str, ttl: float = 2.0) -> Child:
        out, err = tmp / f"{name}.jsonl", tmp / f"{name}.err"
        env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1"}
        env.pop("DISCORD_TOKEN", None)
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "gateway_cli", "run",
                    "--redis", redis_url, "--api-base", api_base, "--token", TOKEN,
                    "--jsonl", "--status", "off", "--verbose",
                    "--lease-ttl", str(ttl), "--save-interval", "0.2",
                    *args,
                ],
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=tmp,
            )  # fmt: skip
        child = Child(process, out, err, name)
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGKILL)
            child.process.wait(timeout=10)


def identifies(fake: ThreadedFakeGateway) -> int:
    """IDENTIFY payloads the fake received, over all connections."""
    return sum(len(conn.payloads(2)) for conn in fake.connections)


def resumes_by_shard(fake: ThreadedFakeGateway) -> dict[int, list[float]]:
    """When each RESUME arrived, by shard (found through the session it named)."""
    out: dict[int, list[float]] = {}
    for conn in fake.connections:
        for payload in conn.connection.sent:
            if payload.op == 6:
                shard_id = fake.fake.sessions[payload.d["session_id"]].shard[0]
                out.setdefault(shard_id, []).append(payload.time)
    return out


def session_of(fake: ThreadedFakeGateway, shard_id: int) -> int:
    """Return the last sequence the fake gave out in the shard's one session."""
    sessions = [s for s in list(fake.fake.sessions.values()) if s.shard[0] == shard_id]
    assert len(sessions) == 1, f"shard {shard_id} has {len(sessions)} sessions"
    return sessions[0].seq


def printed_up_to(child: Child, shard_id: int, last: int) -> Callable[[], bool]:
    """Return a predicate: ``child`` printed sequence ``last`` (or later) of the shard."""
    return lambda: max(child.seqs(shard_id), default=0) >= last


def assert_every_event_arrived(first: Child, then: Child, shard_id: int, last: int) -> None:
    """Every sequence 1..last reached ``first`` or ``then``, in order after deduplication."""
    seen: list[int] = []
    for seq in first.seqs(shard_id) + then.seqs(shard_id):
        if seq not in seen:  # a resume replays what the first one may have printed
            seen.append(seq)
    assert seen[:last] == list(range(1, last + 1)), (shard_id, seen[:last])


def published(client: redis.Redis, keys: Keys, shard_id: int) -> list[int]:
    """The sequences of the shard's dispatches in the events stream, as a worker reads them."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(keys.events)  # type: ignore[assignment]
    metas = [unpack_meta(fields[b"meta"]) for _, fields in entries]
    return [seq for _, shard, _, seq in metas if shard == shard_id and seq is not None]


def published_up_to(
    client: redis.Redis, keys: Keys, shard_id: int, last: int
) -> Callable[[], bool]:
    """Return a predicate: sequence ``last`` (or later) of the shard reached the stream."""
    return lambda: max(published(client, keys, shard_id), default=0) >= last


def assert_every_event_published(
    client: redis.Redis, keys: Keys, shard_id: int, last: int
) -> None:
    """Every sequence 1..last reached the stream, in order after deduplication (one session)."""
    seen: list[int] = []
    for seq in published(client, keys, shard_id):
        if seq not in seen:  # at-least-once: a takeover may publish a replayed event again
            seen.append(seq)
    assert seen[:last] == list(range(1, last + 1)), (shard_id, seen[:last])
