"""The ``spectacles-gateway`` command line (private: import nothing from here).

``args`` parses and validates, ``display`` decides what reaches the terminal or the
pipe, ``run`` wires the fake gateway, the drivers and the display together.
"""

from __future__ import annotations
