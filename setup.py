"""Build hook for the optional C hot path (everything else is in pyproject.toml).

``gateway_proto._speedups`` is optional: if it cannot be compiled (no C compiler,
no Python headers, another interpreter), the install still succeeds and the
pure-Python wire layer, which is the reference, is used. Set
``SPECTACLES_GATEWAY_NO_EXTENSIONS=1`` to skip building it.
"""

import os
import platform

from setuptools import Extension, setup

ext_modules = []
if not os.environ.get("SPECTACLES_GATEWAY_NO_EXTENSIONS") and (
    platform.python_implementation() == "CPython"
):
    ext_modules.append(
        Extension(
            "gateway_proto._speedups",
            ["src/gateway_proto/_speedups.c"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules)
