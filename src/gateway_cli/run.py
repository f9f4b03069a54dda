"""Entry point of ``spectacles-gateway``: options in, the chosen command run, exit status out.

Theory of operation: :func:`main` parses (``args``), builds a :class:`Display`, and
runs one of the commands: ``fake`` (delegated to :mod:`gateway_testing`), ``run``
(``redis_run.py``), ``worker`` (``worker.py``), ``listen`` on the anyio driver
(``listen_anyio.py``), or ``listen`` on the sync driver (``listen_sync.py``).
``listen`` in offline mode first starts the embedded fake gateway on loopback and
points the driver's API base at it. Both drivers report the same
:class:`~gateway_proto.driver_support.GatewayEvent` objects, so :class:`_Listener`
(``listen.py``) turns them into display calls once, for both.

Exit statuses: 0 after a clean stop (``--duration`` elapsed, or the gateway let
every shard go), 1 when a shard stopped on a fatal error (bad token, disallowed
intents, ...), the gateway could not be reached (within ``--duration``, if given),
or no shard ever became ready (the server refused every connection: the last
reason is named), 2 for bad input, 130 after Ctrl-C (closed cleanly all the same),
141 when the reader of stdout went away (``| head``): quietly, as ``cat`` ends
(128 + SIGPIPE). No path prints a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from gateway_testing._cli import run as serve_fake

from .args import ServeOptions, parse_args
from .display import Display
from .explain import _first_real_error, explain
from .listen import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_PIPE_CLOSED, _logging_to
from .listen_anyio import _listen_anyio
from .listen_sync import _listen_sync
from .options import ListenOptions
from .redis_run import RunOptions, run_gateway
from .values import unknown_event_warnings
from .worker import WorkerOptions, run_worker

# The exit statuses are defined with the listen wiring (listen.py), and named here too.
__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PIPE_CLOSED", "explain", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (bad input exits 2 via argparse)."""
    try:
        options = parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or one-line usage errors
        code = exc.code
        return code if isinstance(code, int) else EXIT_FAILURE
    if isinstance(options, ServeOptions):
        return run_fake(options)
    if isinstance(options, RunOptions):
        return run_gateway(options)
    if isinstance(options, WorkerOptions):
        return run_worker(options)
    display = Display.for_options(options)
    return run_listen(options, display)


# -- errors, explained --------------------------------------------------------------


def run_fake(options: ServeOptions) -> int:
    """Serve the fake gateway until ``--duration`` or Ctrl-C; return the exit status.

    The very command ``python -m gateway_testing`` runs (one parser, one server, one
    banner line: ``fake gateway listening: ws://...  (REST: http://..., token: ...)``,
    which scripts parse).
    """
    return serve_fake(options)


# -- listen: shared by both drivers ------------------------------------------------------
def run_listen(options: ListenOptions, display: Display) -> int:
    """Run ``listen`` with the chosen driver; return the exit status."""
    for warning in unknown_event_warnings(options.events):
        display.warning(warning)
    try:
        with _logging_to(display, verbose=options.verbose):
            if options.driver == "sync":
                return _listen_sync(options, display)
            return anyio.run(_listen_anyio, options, display, backend=options.backend)
    except KeyboardInterrupt:
        # Only reached where signal handlers could not be installed (or on a second
        # Ctrl-C during shutdown): still no traceback.
        display.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last resort: one line, never a traceback
        error = _first_real_error(exc) or exc
        if isinstance(error, BrokenPipeError):  # stdout or stderr went away: as cat does
            return EXIT_PIPE_CLOSED
        display.error(explain(error, options))
        return EXIT_FAILURE
