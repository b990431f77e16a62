from __future__ import annotations

import pytest
import torch as th

from sb3_natgrad import ALGOS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Guard against an algorithm registered without conformance settings.
    from algorithms import TINY_KWARGS

    missing = sorted(set(ALGOS) - set(TINY_KWARGS))
    if missing:
        raise pytest.UsageError(f"Add tiny test settings for {missing} to tests/algorithms.py")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Tests run in parallel under pytest-xdist on small machines.
    th.set_num_threads(1)
