"""A ``redis-server`` for a benchmark run, and other processes' CPU time (``bench_broker.py``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "process_cpu"]


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._dir = tempfile.TemporaryDirectory(prefix="bench_redis_")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self._dir.name],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise SystemExit("redis-server did not start")

    def cpu(self) -> float:
        """Seconds of CPU the server used so far (``INFO cpu``: user plus system)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"INFO cpu\r\n")
            data = sock.recv(4096)
            while b"\r\n" not in data:
                data += sock.recv(4096)
            head = data.index(b"\r\n")
            while len(data) < head + 2 + int(data[1:head]) + 2:  # "$N\r\n", N bytes, "\r\n"
                data += sock.recv(4096)
        fields = dict(line.split(":", 1) for line in data.decode().splitlines() if ":" in line)
        return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._dir.cleanup()


def process_cpu(pid: int) -> float:
    """Seconds of CPU process ``pid`` used so far (``/proc``: user plus system; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
