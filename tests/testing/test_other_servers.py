"""The fake's options for what other servers do (PROTOCOL.md 13b): frames and fragments."""

from __future__ import annotations

import random

import pytest

from gateway_testing import FakeGateway

from ._client import WebsocketsClient
from .conftest import FAST, identified

pytestmark = pytest.mark.anyio

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@pytest.mark.parametrize("end_frames", [False, True])
async def test_zstd_end_frames_starts_a_frame_per_message(end_frames: bool) -> None:
    async with FakeGateway(**FAST, zstd_end_frames=end_frames) as fake:
        client, _, payloads = await identified(fake, compress="zstd-stream")
        await fake.dispatch("TYPING_START", {"guild_id": fake.guild_ids[0], "n": 1})
        assert (await client.recv())["d"]["n"] == 1
        assert payloads[0]["t"] == "READY"
        messages = client.decoder.messages
        assert len(messages) >= 4
        starts = [isinstance(m, bytes) and m.startswith(ZSTD_MAGIC) for m in messages]
        # Discord's way: one frame for the connection; the other way: one per message.
        expected = [True] * len(messages) if end_frames else [True] + [False] * (len(messages) - 1)
        assert starts == expected
        await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("compress", [None, "zlib-stream"])
async def test_fragment_size_sends_continuation_fragments(compress: str | None) -> None:
    async with FakeGateway(**FAST, fragment_size=1024) as fake:
        client, _, payloads = await identified(fake, compress=compress)
        assert isinstance(client, WebsocketsClient)
        assert payloads[0]["t"] == "READY"  # itself fragmented, and read whole
        content = random.Random(0).randbytes(2500).hex()  # ~2:1 compressible
        await fake.dispatch("MESSAGE_CREATE", {"guild_id": fake.guild_ids[0], "content": content})
        fragments = [f async for f in client.ws.recv_streaming()]
        sizes = [len(f) for f in fragments]
        assert len(sizes) >= 3
        assert sizes[:-1] == [1024] * (len(sizes) - 1)
        assert 0 < sizes[-1] <= 1024
        joined = "".join(fragments) if compress is None else b"".join(fragments)
        decoded = client.decoder.feed(joined)
        assert decoded is not None
        assert decoded["d"]["content"] == content
        await client.aclose()


def test_fragment_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="fragment_size"):
        FakeGateway(fragment_size=0)
