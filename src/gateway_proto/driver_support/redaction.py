"""Token redaction: a function, a logging filter and the shard's logger.

:func:`redact` removes given secrets from a text, :class:`RedactingFilter`
removes them (and anything shaped like a bot token) from log records, and
:class:`ShardLogger` is the logger both drivers' shards write through.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is subscriptable at run time only from Python 3.11
    _LoggerAdapter = logging.LoggerAdapter


_REDACTED = "[REDACTED]"

#: Secrets at least this long are removed wherever they appear. Discord's tokens are
#: about 70 characters of base64: nothing else in a log contains one by chance, and
#: a token glued to other text (``Bot`` + token) must still go.
WHOLE_WORD_BELOW = 16

# What a token is made of (base64url); a short secret counts only where it is not
# part of a longer run of these, so "t" leaves "connection" alone but not "Bot t",
# '"token": "t"' or "?token=t&". The dot is left out on purpose: a short secret
# next to one (end of a sentence, a dotted token's part) is still removed.
_WORD = "A-Za-z0-9_-"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with each secret (non-empty) replaced by ``[REDACTED]``.

    A secret of :data:`WHOLE_WORD_BELOW` characters or more is replaced wherever it
    appears; a shorter one (a test token) only where it stands as a whole token:
    not inside a longer word, but after ``Bot``, between quotes, in a URL, at
    either end. Over-redacting a short secret is harmless; under-redacting a real
    one is not, and a real one is never short.
    """
    for secret in secrets:
        if not secret or secret not in text:
            continue
        if len(secret) >= WHOLE_WORD_BELOW:
            text = text.replace(secret, _REDACTED)
        else:
            pattern = f"(?<![{_WORD}]){re.escape(secret)}(?![{_WORD}])"
            text = re.sub(pattern, _REDACTED, text)
    return text


# Discord bot tokens look like base64(id).timestamp.hmac; redact anything shaped so,
# even a token this process was never given (e.g. in a server's error text).
_TOKEN_SHAPE = re.compile(r"[A-Za-z\d_-]{23,28}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,40}")


def redact_token_shapes(text: str) -> str:
    """Return ``text`` with anything shaped like a bot token replaced by ``[REDACTED]``."""
    return _TOKEN_SHAPE.sub(_REDACTED, text)


class RedactingFilter(logging.Filter):
    """A logging filter that removes the given tokens (and token-shaped strings).

    Attach it to a logger or handler; it formats the message once, redacts it and
    drops the arguments, so no handler can format the raw token back in.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]] | Iterable[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        secrets = self._secrets() if callable(self._secrets) else self._secrets
        message = redact_token_shapes(redact(record.getMessage(), secrets))
        record.msg = message
        record.args = None
        return True


class ShardLogger(_LoggerAdapter):
    """A shard's logger: formats each record once and removes the token before it leaves.

    Both drivers log through it (``gateway_anyio.shard.<id>``, ``gateway_sync.shard.<id>``),
    so no handler, filter or formatter downstream ever sees the token.

    Args:
        logger: the logger to write to.
        token: the secret to redact.

    """

    def __init__(self, logger: logging.Logger, token: str) -> None:
        super().__init__(logger, {})
        self._token = token

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log ``msg % args`` at ``level``, redacted (the caller's line is kept)."""
        if self.logger.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.setdefault("stacklevel", 3)
            self.logger.log(level, redact(text, [self._token]), **kwargs)
