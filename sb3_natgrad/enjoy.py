"""``python -m sb3_natgrad.enjoy``: rl-zoo3's ``enjoy`` able to load the plugin's models."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sb3_natgrad.zoo import register


def main(argv: Sequence[str] | None = None) -> None:
    register()
    import rl_zoo3.enjoy

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    rl_zoo3.enjoy.enjoy()


if __name__ == "__main__":
    main()
