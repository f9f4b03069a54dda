"""Parsing and validation of the command line: values in, options or one-line errors out."""

from __future__ import annotations

import pytest

from gateway_cli.args import (
    DEFAULT_OFFLINE_DURATION,
    ListenOptions,
    ServeOptions,
    ShardSpec,
    build_parser,
    intent_names,
    parse_args,
    parse_event_names,
    parse_intents,
    parse_shards,
    privileged_names,
)
from gateway_proto.intents import Intents


def listen(*argv: str, env: dict[str, str] | None = None) -> ListenOptions:
    options = parse_args(["listen", *argv], environ=env or {})
    assert isinstance(options, ListenOptions)
    return options


# -- shards ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", ShardSpec(count=None)),
        ("AUTO", ShardSpec(count=None)),
        ("1", ShardSpec(count=1)),
        ("16", ShardSpec(count=16)),
        ("0-3/16", ShardSpec(count=16, ids=(0, 1, 2, 3))),
        ("4-7/16", ShardSpec(count=16, ids=(4, 5, 6, 7))),
        ("5/8", ShardSpec(count=8, ids=(5,))),
        (" 2-2/3 ", ShardSpec(count=3, ids=(2,))),
    ],
)
def test_parse_shards_accepts(text: str, expected: ShardSpec) -> None:
    assert parse_shards(text) == expected


@pytest.mark.parametrize(
    "text", ["", "0", "-1", "3-1/8", "0-8/8", "8/8", "1-2", "a-b/c", "1.5", "0-3/0", "0-/4"]
)
def test_parse_shards_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_shards(text)


def test_shard_spec_resolves_ids_and_prints_back() -> None:
    assert ShardSpec(count=None).shard_ids(3) == (0, 1, 2)
    assert ShardSpec(count=None).is_auto
    assert parse_shards("2-3/8").shard_ids(99) == (2, 3)
    for text in ("auto", "4", "2-3/8"):
        assert str(parse_shards(text)) == text


# -- intents and events ---------------------------------------------------------------


def test_parse_intents_by_name_number_and_group() -> None:
    assert parse_intents("guilds,GUILD_MESSAGES") == Intents.GUILDS | Intents.GUILD_MESSAGES
    assert parse_intents("513") == Intents.GUILDS | Intents.GUILD_MESSAGES
    assert parse_intents("default") == Intents.default()
    assert not parse_intents("default") & Intents.privileged()


@pytest.mark.parametrize("text", ["guilds,nonsense", "", " , ", str(1 << 17)])
def test_parse_intents_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_intents(text)


def test_intent_names_and_privileged_names() -> None:
    value = int(Intents.GUILDS | Intents.MESSAGE_CONTENT | Intents.GUILD_MEMBERS)
    assert intent_names(value) == ["guilds", "guild_members", "message_content"]
    assert privileged_names(value) == ["guild_members", "message_content"]
    assert privileged_names(int(Intents.default())) == []


def test_parse_event_names_uppercases_and_refuses_junk() -> None:
    assert parse_event_names("message_create, READY") == {"MESSAGE_CREATE", "READY"}
    for bad in ("", ",", "MESSAGE-CREATE", "1ABC"):
        with pytest.raises(ValueError, match=r"."):
            parse_event_names(bad)


# -- listen options -------------------------------------------------------------------


def test_listen_without_token_is_offline_with_a_default_duration() -> None:
    options = listen()
    assert options.offline
    assert options.token is None
    assert options.duration == DEFAULT_OFFLINE_DURATION
    assert options.shards == ShardSpec(count=None)
    assert options.intents == int(Intents.default())
    assert options.compression == "zlib-stream"


def test_listen_with_a_token_runs_forever_by_default() -> None:
    options = listen("--token", "Bot abc.def.ghi")
    assert not options.offline
    assert options.token == "abc.def.ghi"
    assert options.duration is None
    assert "abc.def.ghi" not in repr(options)


def test_listen_reads_discord_token_from_the_environment_unless_offline() -> None:
    assert listen(env={"DISCORD_TOKEN": "tok"}).token == "tok"
    assert listen("--offline", env={"DISCORD_TOKEN": "tok"}).offline


def test_duration_zero_means_forever() -> None:
    assert listen("--duration", "0").duration is None
    assert listen("--duration", "2.5").duration == 2.5


def test_listen_options_are_carried_through() -> None:
    options = listen(
        "--shards",
        "0-1/4",
        "--intents",
        "guilds",
        "--encoding",
        "etf",
        "--compress",
        "none",
        "--events",
        "message_create",
        "--jsonl",
        "--backend",
        "trio",
        "--rate",
        "50",
        "--status",
        "off",
    )
    assert options.shards == ShardSpec(count=4, ids=(0, 1))
    assert options.intents == int(Intents.GUILDS)
    assert (options.encoding, options.compression) == ("etf", None)
    assert options.events == frozenset({"MESSAGE_CREATE"})
    assert options.jsonl
    assert options.backend == "trio"
    assert options.rate == 50
    assert options.status == "off"


def test_fake_options() -> None:
    options = parse_args(["fake", "--port", "0", "--shards", "3", "--rate", "20"], environ={})
    assert isinstance(options, ServeOptions)
    assert (options.port, options.shards, options.rate) == (0, 3, 20)
    assert options.duration is None
    assert options.encoding is None


BAD_INPUT = [
    (["listen", "--intents", "guilds,bogus"], "unknown intent 'bogus'"),
    (["listen", "--shards", "3-1/8"], "runs backwards"),
    (["listen", "--shards", "0-8/8"], "shard ids go from 0 to 7"),
    (["listen", "--shards", "x"], "expected auto, N or A-B/TOTAL"),
    (["listen", "--encoding", "xml"], "invalid choice: 'xml'"),
    (["listen", "--compress", "gzip"], "invalid choice: 'gzip'"),
    (["listen", "--api-base", "http://127.0.0.1:1/api/v10"], "--api-base needs a token"),
    (["listen", "--token", "t", "--api-base", "ftp://x"], "http:// or https://"),
    (["listen", "--token", " "], "--token is empty"),
    (["listen", "--offline", "--token", "t"], "contradict"),
    (["listen", "--driver", "sync", "--backend", "trio"], "--backend applies to --driver anyio"),
    (["listen", "--duration", "-1"], "0 (forever) or more"),
    (["listen", "--events", ""], "--events is empty"),
    (["fake", "--port", "70000"], "TCP port"),
    (["fake", "--shards", "0"], "at least 1"),
    (["nope"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv, environ={})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("spectacles-gateway")
    assert message in err


def test_help_names_privileged_intents_and_the_offline_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["listen", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in ("guild_members", "guild_presences", "message_content"):
        assert f"{name} (PRIVILEGED)" in out
    assert "guilds (PRIVILEGED)" not in out
    assert f"{DEFAULT_OFFLINE_DURATION:g} offline" in out


def test_discord_api_base_points_listen_and_run_at_a_server_as_the_library_does() -> None:
    from gateway_cli.redis_run import RunOptions

    env = {"DISCORD_TOKEN": "t", "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10"}
    listen = parse_args(["listen"], env)
    assert isinstance(listen, ListenOptions)
    assert listen.api_base == "http://127.0.0.1:9/api/v10"
    flag = parse_args(["listen", "--api-base", "http://127.0.0.1:8/api/v10"], env)
    assert isinstance(flag, ListenOptions)
    assert flag.api_base == "http://127.0.0.1:8/api/v10"  # the flag wins
    offline = parse_args(["listen"], {"DISCORD_API_BASE": "http://127.0.0.1:9/api/v10"})
    assert isinstance(offline, ListenOptions)
    assert offline.offline  # no token: the embedded fake, whatever the variable says
    assert offline.api_base is None
    run = parse_args(["run", "--redis", "redis://h/0", "--count", "1"], env)
    assert isinstance(run, RunOptions)
    assert run.api_base == "http://127.0.0.1:9/api/v10"
