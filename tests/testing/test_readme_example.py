"""The README's "Testing your bot offline" example; the test below keeps the two equal."""

from __future__ import annotations

import anyio
import pytest

from gateway_anyio import Shard
from gateway_testing import FakeGateway


@pytest.mark.anyio
async def test_bot_answers_a_zombie_with_a_resume() -> None:
    async with FakeGateway(token="test-token", heartbeat_interval=0.2) as fake:
        shard = Shard("test-token", intents=513, url=fake.gateway_url)
        seen: list[str] = []
        shard.on("MESSAGE_CREATE", lambda event: seen.append(event.data["content"]))
        async with anyio.create_task_group() as tg:
            tg.start_soon(shard.connect)
            first = await fake.next_connection()
            await first.wait_identified()
            first.stop_acking()  # the connection turns into a zombie...
            await fake.dispatch("MESSAGE_CREATE", {"guild_id": fake.guild_ids[0], "content": "hi"})
            second = await fake.next_connection()  # ...so the bot reconnects
            await second.wait_for_op(6)  # and resumes instead of identifying
            await second.wait_until(lambda: seen == ["hi"])  # "hi" arrives exactly once
            await shard.disconnect()
        assert second.path == "/resume"


def test_readme_shows_this_file() -> None:
    from pathlib import Path

    here = Path(__file__)
    readme = (here.parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Testing your bot offline", 1)[1]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0]
    body = here.read_text(encoding="utf-8").split("from __future__ import annotations\n\n", 1)[1]
    assert body.split("\n\ndef test_readme_shows_this_file", 1)[0].strip() == shown.strip()
