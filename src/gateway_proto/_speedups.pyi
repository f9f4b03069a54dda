"""The wire layer's input buffer, with its hot path in C (optional; see ``_wire.py``)."""

from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from typing_extensions import Self

from .compression import PayloadInflater, ZlibStreamInflater, ZstdStreamInflater
from .events import Dispatch

_T = TypeVar("_T")

class Scanner:
    """The wire layer's input buffer, with its hot path: common frames to payloads."""

    #: The buffered input.
    data: bytes
    #: Where the next frame starts.
    pos: int
    #: A fragmented message is in progress (``next()`` takes nothing).
    fragmenting: bool
    #: Whole messages taken so far (by ``next()`` and the Python parser).
    messages: int
    #: Their size after decompression, in bytes.
    payload_bytes: int

    def __init__(
        self,
        decode: Callable[[bytes], Any],
        envelope: Callable[[Any], Any],
        on_error: Callable[[BaseException], Any],
        max_size: int,
        inflate: bool,
        decoded: bool,
        zlib_stream: ZlibStreamInflater | None = ...,
        dispatch: type[Dispatch] | None = ...,
        zstd_stream: ZstdStreamInflater | None = ...,
        payload: PayloadInflater | None = ...,
        keep_raw: bool = ...,
    ) -> None: ...
    def next(self) -> Any:
        """Decode the common-case frame at ``data[pos:]`` and move past it, or return ``None``."""
    def run(
        self,
        into: list[_T],
        make: Callable[[str, Any, int | None, bytes | None], _T],
        limit: int,
        last_s: int,
        counts: dict[str, int] | None,
        payload_bound: int,
        /,
    ) -> tuple[int, int, Any]:
        """Take the ordinary dispatches at ``data[pos:]`` into ``into``: ``(taken, last_s, item)``.

        ``item`` is what ended the run (``next()``'s item for it, or the error), or ``None``.
        """

class SlotMaker:
    """Builds ``cls`` instances from positional values, one per slot name, without ``__init__``.

    The slots named in ``fixed`` are set to its values in every instance.
    """

    def __init__(
        self, cls: type, names: tuple[str, ...], fixed: dict[str, Any] = ...
    ) -> None: ...
    def __call__(self, *values: Any) -> Any:
        """Return a new ``cls`` with its named slots set to ``values``, in order."""

class BufferedAnext(Generic[_T]):
    """Base of an async iterator over a deque (``_items``): see driver_support.buffers."""

    _items: deque[_T]

    def __aiter__(self) -> Self: ...
    def __anext__(self) -> Coroutine[Any, Any, _T]: ...
    async def _wait_next(self) -> _T: ...
