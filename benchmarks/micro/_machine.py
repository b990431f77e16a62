"""The machine record of a micro-benchmark's JSON and its line in the Markdown report (shared by the modules)."""

from __future__ import annotations

import os
import platform
from typing import Any


def machine(load_before: tuple[float, ...], load_after: tuple[float, ...], **versions: str) -> dict[str, Any]:
    """Python, torch (and ``versions``), processor, threads, CPUs and the load averages around the timed part."""
    import torch  # imported here, as in the modules: listing the micro-benchmarks stays light

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        **versions,
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
    }


def load_text(m: dict[str, Any]) -> str:
    """``load average (1/5/15 min) a / b / c before, d / e / f after`` of a :func:`machine` record."""
    before, after = (" / ".join(f"{x:.2f}" for x in m[key]) for key in ("load_average_before", "load_average_after"))
    return f"load average (1/5/15 min) {before} before, {after} after"
