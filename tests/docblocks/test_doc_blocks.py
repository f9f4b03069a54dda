"""Every fenced code block of README.md and docs/*.md is run or checked here.

The blocks are read from the Markdown files themselves (see ``_blocks.py``), so a
doc example cannot rot or hang unnoticed. How each is tested follows its
``doc-test`` marker (CONTRIBUTING.md explains them):

- ``run`` (no marker): a complete program, run in a subprocess; it must exit 0. A
  block that defines ``test_*`` functions is run by pytest instead.
- ``bot``: a program written for Discord, run against a fake gateway that accepts
  its placeholder token, with ``DISCORD_API_BASE`` pointing at the fake. It must
  print a line (``until="ready"``: identify) and then stop on Ctrl-C; with
  ``send="TEXT"``, the fake sends a message with that content and the program must
  end by itself.
- ``fragment``: type-checked with mypy (strict, untyped handlers allowed), inside
  an ``async def`` after the marker's prelude.
- ``listing``: an API listing (signatures), not Python; not run.
- ``needs-redis``: the program gets ``REDIS_URL`` of the suite's redis-server.

Shell blocks: every ``spectacles-gateway ...`` line must parse with the CLI's own
parser, and every script or example a line runs must exist.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from gateway_testing import FakeGateway

from ._blocks import NOT_CODE, PYTHON, ROOT, SHELL, Block, all_blocks

BLOCKS = all_blocks()
PY_BLOCKS = [b for b in BLOCKS if b.lang in PYTHON]
#: The placeholder tokens of the docs, which the fake of a ``bot`` block accepts.
PLACEHOLDER = "YOUR-BOT-TOKEN"
#: Seconds a block may take before it fails (only a hang takes this long).
TIMEOUT = 30.0

#: Until the library reads DISCORD_API_BASE itself, point the default REST base at
#: it here (a no-op once it does; the env var is the documented way either way).
_SHIM = """
import os, runpy, sys
from gateway_proto.driver_support import gateway_info as _gi
_init = _gi.GatewayBase.__init__
def _init_env(self, token, *args, api_base, **kw):
    if api_base == "https://discord.com/api/v10":
        api_base = os.environ.get("DISCORD_API_BASE", api_base)
    _init(self, token, *args, api_base=api_base, **kw)
_gi.GatewayBase.__init__ = _init_env
path = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(path, run_name="__main__")
"""


def _ids(blocks: list[Block]) -> list[str]:
    return [block.id for block in blocks]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "REDIS_URL"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def _write(block: Block, directory: Path) -> Path:
    """The block as a file whose line numbers are the Markdown file's."""
    name = re.sub(r"\W", "_", block.id) + ".py"
    path = directory / name
    path.write_text("\n" * (block.line - 1) + block.code, encoding="utf-8")
    return path


def _is_test_module(code: str) -> bool:
    tree = ast.parse(code)
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        for node in tree.body
    )


def _check_output(block: Block, proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"{block.id} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr, f"{block.id}:\n{proc.stderr}"


@pytest.fixture(scope="module")
def redis_env() -> Iterator[dict[str, str]]:
    """``REDIS_URL`` of a redis-server started for this module (on a free port)."""
    from scaling.conftest import start_redis, stop_redis

    server = start_redis()
    try:
        yield {"REDIS_URL": server.url}
    finally:
        stop_redis(server)


def _extra_env(block: Block, request: pytest.FixtureRequest) -> dict[str, str]:
    if "needs-redis" in block.kinds:
        env: dict[str, str] = request.getfixturevalue("redis_env")
        return dict(env)
    return {}


# -- the collection itself ------------------------------------------------------------


def test_the_docs_have_blocks_of_every_kind() -> None:
    kinds = {block.kind for block in PY_BLOCKS}
    assert kinds == {"run", "bot", "fragment", "listing"}
    assert any("needs-redis" in block.kinds for block in PY_BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=_ids(BLOCKS))
def test_every_block_has_a_known_language(block: Block) -> None:
    assert block.lang in PYTHON | SHELL | NOT_CODE, f"{block.id}: unknown language {block.lang!r}"


@pytest.mark.parametrize("block", PY_BLOCKS, ids=_ids(PY_BLOCKS))
def test_python_blocks_parse(block: Block) -> None:
    if block.kind == "listing":
        return  # signatures, not Python
    source = block.code
    if block.kind == "fragment":  # a fragment may await: it is checked inside a coroutine
        source = "async def _f():\n" + "".join(f"    {line}\n" for line in source.splitlines())
    compile(source, block.id, "exec")


# -- complete programs ----------------------------------------------------------------

RUN = [b for b in PY_BLOCKS if b.kind == "run"]


@pytest.mark.parametrize("block", RUN, ids=_ids(RUN))
def test_program_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    path = _write(block, tmp_path)
    if _is_test_module(block.code):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
        command += ["--rootdir", str(tmp_path), str(path)]
    else:
        command = [sys.executable, str(path)]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(_extra_env(block, request)),
        cwd=tmp_path,
        check=False,
    )
    _check_output(block, proc)
    if _is_test_module(block.code):
        assert re.search(r"\b[1-9]\d* passed\b", proc.stdout), proc.stdout


# -- programs written for Discord, against a fake ---------------------------------------

BOTS = [b for b in PY_BLOCKS if b.kind == "bot"]


class _Output:
    """A subprocess's stdout, read by a thread; ``wait_line`` blocks for the first line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._first = threading.Event()
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)
            self._first.set()
        self._first.set()

    def wait_line(self, timeout: float) -> bool:
        self._first.wait(timeout)
        return bool(self.lines)

    def text(self) -> str:
        self._thread.join(5)
        return "".join(self.lines)


def _fake_call(portal: BlockingPortal, fn: Callable[[], Any]) -> Any:
    async def call() -> Any:
        with anyio.fail_after(TIMEOUT):
            return await fn()

    return portal.call(call)


@pytest.mark.parametrize("block", BOTS, ids=_ids(BOTS))
def test_bot_runs_against_a_fake(
    block: Block, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fake = FakeGateway(
        token=PLACEHOLDER,
        shards=1,
        event_rate=20.0,
        heartbeat_interval=2.0,
        identify_window=0.05,
    )
    path = _write(block, tmp_path)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(fake) as running:
        env = _env({"DISCORD_API_BASE": running.api_base, "DISCORD_TOKEN": PLACEHOLDER})
        env.update(_extra_env(block, request))
        err_path = tmp_path / "stderr.txt"
        with (
            err_path.open("w") as err,
            subprocess.Popen(
                [sys.executable, "-c", _SHIM, str(path)],
                stdout=subprocess.PIPE,
                stderr=err,  # a file: a chatty program never blocks on a full pipe
                text=True,
                env=env,
                cwd=tmp_path,
            ) as proc,
        ):
            _drive_bot(block, proc, portal, running, err_path)


def _drive_bot(
    block: Block,
    proc: subprocess.Popen[str],
    portal: BlockingPortal,
    running: FakeGateway,
    err_path: Path,
) -> None:
    output = _Output(proc)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:  # a program that dies at once fails at once, not after TIMEOUT
            try:
                conn = _fake_call(portal, lambda: running.next_connection(timeout=0.5))
                session = _fake_call(portal, partial(conn.wait_identified, timeout=TIMEOUT))
                break
            except TimeoutError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{block.id} did not identify to the fake:\n{err_path.read_text()}")
        if "send" in block.options:
            data = {
                "guild_id": session.guild_ids[0],
                "channel_id": "1",
                "content": block.options["send"],
            }
            _fake_call(portal, lambda: running.dispatch("MESSAGE_CREATE", data))
            proc.wait(TIMEOUT)
            err = err_path.read_text()
            out = output.text()
            assert proc.returncode == 0, f"{block.id} exited {proc.returncode}:\n{out}\n{err}"
            assert "Traceback" not in err, err
            return
        until = block.options.get("until", "output")
        if until == "exit":
            proc.wait(TIMEOUT)
            assert proc.returncode == 0, (
                f"{block.id} exited {proc.returncode}:\n{err_path.read_text()}"
            )
        elif until == "output":
            assert output.wait_line(TIMEOUT), f"{block.id} printed nothing:\n{err_path.read_text()}"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(TIMEOUT)
        err = err_path.read_text()
        # Ctrl-C may end a program with KeyboardInterrupt's traceback, nothing else.
        if "Traceback" in err:
            assert err.strip().splitlines()[-1] == "KeyboardInterrupt", f"{block.id}:\n{err}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- fragments, type-checked -----------------------------------------------------------

FRAGMENTS = [b for b in PY_BLOCKS if b.kind == "fragment"]
_INLINE = "# mypy: allow-untyped-defs, allow-incomplete-defs, allow-untyped-calls"


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Run mypy once over every fragment; its messages by block id, in Markdown lines."""
    from mypy import api

    directory = tmp_path_factory.mktemp("doc_fragments")
    offsets: dict[str, tuple[Block, int]] = {}
    for block in FRAGMENTS:
        module = "doc_" + re.sub(r"\W", "_", block.id)
        head = [_INLINE, *block.prelude.splitlines(), "", "", "async def _doc_block() -> None:"]
        body = [f"    {line}" if line.strip() else "" for line in block.code.splitlines()]
        (directory / f"{module}.py").write_text("\n".join([*head, *body, ""]), encoding="utf-8")
        offsets[module] = (block, len(head))
    stdout, stderr, _ = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--no-error-summary",
            "--show-error-codes",
            *sorted(str(p) for p in directory.glob("*.py")),
        ]
    )
    assert not stderr, stderr
    errors: dict[str, list[str]] = {block.id: [] for block in FRAGMENTS}
    for line in stdout.splitlines():
        match = re.match(r"^(?:.*/)?(doc_\w+)\.py:(\d+): (.*)$", line)
        if match is None:
            continue
        block, offset = offsets[match.group(1)]
        number = int(match.group(2)) - offset
        where = f"line {block.line + number - 1}" if number > 0 else "the marker's prelude"
        errors[block.id].append(f"{block.id} ({where}): {match.group(3)}")
    return errors


@pytest.mark.parametrize("block", FRAGMENTS, ids=_ids(FRAGMENTS))
def test_fragment_type_checks(block: Block, mypy_errors: dict[str, list[str]]) -> None:
    assert not mypy_errors[block.id], "\n".join(mypy_errors[block.id])


# -- shell blocks ------------------------------------------------------------------------

SHELL_BLOCKS = [b for b in BLOCKS if b.lang in SHELL]


def _commands(code: str) -> Iterator[list[str]]:
    """The simple commands of a shell block: ``a | b && c &`` gives a, b and c."""
    for raw in code.splitlines():
        line = raw.split(" #", 1)[0].strip().removeprefix("$ ")
        if not line or line.startswith(("#", "{")):  # a comment, or output (JSON lines)
            continue
        for part in re.split(r"\s*(?:\|\||&&|\||;|&)\s*", line):
            words = shlex.split(part)
            if words:
                yield words


def _cli_parse() -> Callable[..., Any]:
    for name in ("gateway_cli.args", "gateway_anyio._cli.args"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        parse: Callable[..., Any] = module.parse_args
        return parse
    raise AssertionError("the CLI's parse_args was not found")


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=_ids(SHELL_BLOCKS))
def test_shell_commands_exist(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    parse = _cli_parse()
    for words in _commands(block.code):
        environ: dict[str, str] = {}
        while words and re.match(r"^[A-Z_]+=", words[0]):
            key, _, value = words.pop(0).partition("=")
            environ[key] = value
        if not words:
            continue
        if words[0] == "spectacles-gateway":
            # Valid as shown, or with the DISCORD_TOKEN the reader exports (as the docs say).
            tried: list[str] = []
            for env in (environ, {"DISCORD_TOKEN": "placeholder", **environ}):
                try:
                    parse(words[1:], env)
                    break
                except SystemExit:
                    tried.append(capsys.readouterr().err.strip())
            else:
                pytest.fail(f"{block.id}: `{shlex.join(words)}` does not parse: {tried}")
        elif words[0] in {"bash", "sh", "python", "python3"} and len(words) > 1:
            if words[1] == "-m":
                assert importlib.util.find_spec(words[2]) is not None, f"{block.id}: {words}"
            else:
                assert (ROOT / words[1]).is_file(), f"{block.id}: {words[1]} does not exist"


# -- API listings: every parameter shown exists ------------------------------------------

LISTINGS = [b for b in PY_BLOCKS if b.kind == "listing"]
_CALL = re.compile(r"^(?:await |async for \w+ in |for \w+ in )?(\w+)(?:\.(\w+))?\(")


def _line_calls(code: str) -> Iterator[tuple[str, str | None, list[str]]]:
    offset = 0
    for line in code.splitlines(keepends=True):
        match = _CALL.match(line)
        if match is not None:
            start = offset + match.end()
            depth, i = 1, start
            while depth and i < len(code):
                depth += {"(": 1, ")": -1}.get(code[i], 0)
                i += 1
            params: list[str] = []
            depth, part = 0, ""
            for char in code[start : i - 1] + ",":
                if char == "," and depth == 0:
                    word = re.match(r"\s*(\*{0,2})(\w+)", part)
                    if word is not None and not word.group(1):
                        params.append(word.group(2))
                    part = ""
                    continue
                depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
                part += char
            yield match.group(1), match.group(2), params
        offset += len(line)


def _signature_of(module: Any, name: str, attribute: str | None) -> inspect.Signature | None:
    owner = getattr(module, name, None) or getattr(module, name.capitalize(), None)
    if owner is None:
        return None
    target = getattr(owner, attribute, None) if attribute else owner
    if target is None or not callable(target):
        return None
    return inspect.signature(target)


@pytest.mark.parametrize("block", LISTINGS, ids=_ids(LISTINGS))
def test_listing_parameters_exist(block: Block) -> None:
    module = importlib.import_module(block.options["module"])
    checked = 0
    for name, attribute, params in _line_calls(block.code):
        signature = _signature_of(module, name, attribute)
        if signature is None:
            continue
        checked += 1
        real = set(signature.parameters)
        missing = [p for p in params if p not in real]
        shown = f"{name}.{attribute}" if attribute else name
        assert not missing, f"{block.id}: {shown} has no parameter {missing} (it has {real})"
    assert checked, f"{block.id}: no call of {block.options['module']} found to check"
