"""Driver options that both drivers spell the same way, and their deprecated names."""

from __future__ import annotations

import enum
import warnings

from gateway_proto.config import Compression

__all__ = ["NOT_GIVEN", "NotGiven", "compression_option"]


class NotGiven(enum.Enum):
    """The type of :data:`NOT_GIVEN`: a keyword the caller did not pass."""

    NOT_GIVEN = "NOT_GIVEN"


#: Default of a deprecated keyword, so passing it (even as ``None``) can be told apart.
NOT_GIVEN = NotGiven.NOT_GIVEN


def compression_option(
    compression: Compression, compress: Compression | NotGiven, *, stacklevel: int = 3
) -> Compression:
    """Return the transport compression a shard was given.

    ``compression=`` is the one name (as :class:`~gateway_proto.ShardConfig` spells
    it); ``compress=``, the drivers' old name, still works and warns.

    Warns:
        DeprecationWarning: ``compress`` was given.

    """
    if compress is NOT_GIVEN:
        return compression
    warnings.warn(
        "Shard(compress=...) is deprecated: use compression=... (as ShardConfig spells it)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return compress
