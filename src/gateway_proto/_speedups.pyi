"""The wire layer's hot path in C (optional; ``_wire.py`` is the reference)."""

from collections.abc import Callable
from typing import Any

from .compression import ZlibStreamInflater
from .events import Dispatch

class Scanner:
    """The wire layer's hot path: common-case frames to decoded payloads."""

    def __init__(
        self,
        decode: Callable[[bytes], Any],
        envelope: Callable[[Any], Any],
        max_size: int,
        inflate: bool,
        decoded: bool,
        zlib_stream: ZlibStreamInflater | None = ...,
        dispatch: type[Dispatch] | None = ...,
    ) -> None: ...
    @property
    def end(self) -> int:
        """Where the frame last taken by :meth:`scan` ended."""
    def scan(self, data: bytes, pos: int, /) -> Any:
        """Decode the common-case frame at ``data[pos:]``, or return ``None``."""
