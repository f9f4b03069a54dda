"""The library's version and home page (the User-Agent is built from both)."""

from __future__ import annotations

__all__ = ["PROJECT_URL", "__version__"]

__version__ = "0.1.0.dev0"
#: Where the library lives; Discord's User-Agent form for bots names it.
PROJECT_URL = "https://pypi.org/project/spectacles-gateway/"
