"""The fixture itself: a real server answers, and a flushed database starts empty."""

from __future__ import annotations

import redis


def test_a_real_redis_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        assert client.dbsize() == 0
        info = client.info("server")
        assert int(str(info["redis_version"]).split(".")[0]) >= 7
    finally:
        client.close()
