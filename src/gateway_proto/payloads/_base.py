"""Scalar aliases shared by every payload module.

These modules deliberately do without ``from __future__ import annotations``:
a TypedDict's required and optional keys are computed from its annotations when
the class is created, and ``NotRequired`` inside a string annotation is not seen
there, so ``__required_keys__`` would be wrong for tools that read it at run time.
"""

from typing import Any, TypeAlias

__all__ = ["Component", "Snowflake", "Timestamp"]

#: A Discord ID: a 64-bit integer sent as a decimal string (both codecs give ``str``).
Snowflake: TypeAlias = str
#: An ISO 8601 date and time, as Discord sends it (e.g. ``"2026-08-06T18:31:01.000000+00:00"``).
Timestamp: TypeAlias = str
#: A message component or a component in a modal submission. Components nest and
#: come in many kinds; their fields are left to the caller (``component["type"]`` first).
Component: TypeAlias = dict[str, Any]
