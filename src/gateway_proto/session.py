"""The resumable part of a gateway connection, as a plain value.

A :class:`Session` outlives the WebSocket it was made on: hand the one a closed
connection reports to the next ``GatewayConnection(config, session=...)`` and that
connection resumes instead of identifying. It is immutable and serialisable, so a
restarting process can persist it and resume within Discord's grace period.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Session"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """What a resume needs: the session id, the last sequence, the resume URL.

    Attributes:
        session_id: from READY.
        sequence: the last non-null ``s`` received (``None`` if none yet).
        resume_url: ``resume_gateway_url`` from READY, without a query string.

    """

    session_id: str
    sequence: int | None
    resume_url: str

    def with_sequence(self, sequence: int) -> Session:
        """Return a copy carrying a newer sequence number."""
        return replace(self, sequence=sequence)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict, for persisting across process restarts."""
        return {
            "session_id": self.session_id,
            "sequence": self.sequence,
            "resume_url": self.resume_url,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        """Rebuild a session saved with :meth:`to_dict`.

        Raises:
            ValueError: if a field is missing or of the wrong type.

        """
        try:
            session_id = data["session_id"]
            sequence = data["sequence"]
            resume_url = data["resume_url"]
        except KeyError as exc:
            raise ValueError(f"session dict lacks {exc.args[0]!r}") from None
        if not isinstance(session_id, str) or not isinstance(resume_url, str):
            raise ValueError("session_id and resume_url must be str")
        if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
            raise ValueError("sequence must be an int or None")
        return cls(session_id=session_id, sequence=sequence, resume_url=resume_url)
