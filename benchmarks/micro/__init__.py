"""Micro-benchmarks of the math core (Fisher-vector product, K-FAC, replay), one module each.

Every module of this package with a ``main(argv: list[str] | None = None) -> int`` is a micro-benchmark,
run by ``python -m benchmarks micro --suite <module name>``; adding one is adding such a module here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import cast

MicroMain = Callable[[list[str] | None], int]


def available() -> list[str]:
    """Names of the micro-benchmark modules in this package, sorted (found by file, not imported)."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def load(name: str) -> MicroMain:
    """The ``main`` of the micro-benchmark ``name``.

    :raises ValueError: when no such module exists or it has no ``main``.
    """
    if name not in available():
        raise ValueError(f"no micro-benchmark {name!r}; there are {available()}")
    module = importlib.import_module(f"{__name__}.{name}")
    main = getattr(module, "main", None)
    if not callable(main):
        raise ValueError(f"benchmarks.micro.{name} has no main(argv) function")
    return cast(MicroMain, main)
