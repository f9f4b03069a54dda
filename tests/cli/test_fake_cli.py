"""One fake-gateway command line: ``python -m gateway_testing`` is ``spectacles-gateway fake``.

The same parser serves both, so the flags, their defaults and their checks cannot
drift apart again (issue 11, item 8).
"""

from __future__ import annotations

import argparse

import pytest

from gateway_cli.args import build_parser
from gateway_cli.args import parse_args as cli_parse_args
from gateway_testing import _cli as fake_cli


def _options(parser: argparse.ArgumentParser) -> dict[str, object]:
    return {
        action.dest: (sorted(action.option_strings), action.default)
        for action in parser._actions
        if action.option_strings and action.dest != "help"
    }


def _fake_subparser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices["fake"]
    return parser


def test_both_commands_have_the_same_flags_and_defaults() -> None:
    assert _options(_fake_subparser()) == _options(fake_cli.build_parser())


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--port", "0", "--shards", "4", "--rate", "20", "--encoding", "etf"],
        ["--compress", "none", "--guilds-per-shard", "2", "--duration", "3", "-v"],
    ],
)
def test_both_commands_parse_to_the_same_settings(argv: list[str]) -> None:
    assert cli_parse_args(["fake", *argv], environ={}) == fake_cli.parse_args(argv)


@pytest.mark.parametrize(
    "argv", [["--port", "70000"], ["--shards", "0"], ["--rate", "0"], ["--duration", "-1"]]
)
def test_both_commands_refuse_the_same_bad_input(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as fake_exit:
        fake_cli.parse_args(argv)
    with pytest.raises(SystemExit) as cli_exit:
        cli_parse_args(["fake", *argv], environ={})
    assert fake_exit.value.code == cli_exit.value.code == 2
