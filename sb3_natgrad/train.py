"""``python -m sb3_natgrad.train``: rl-zoo3's ``train`` with the plugin's algorithms registered.

Every ``rl_zoo3.train`` flag is accepted. For a plugin algorithm the default ``--conf-file`` is the
plugin's ``hyperparams/<algo>.yml``; an explicit ``--conf-file`` wins.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sb3_natgrad.zoo import register, with_default_conf_file


def main(argv: Sequence[str] | None = None) -> None:
    register()
    import rl_zoo3.train

    sys.argv = [sys.argv[0], *with_default_conf_file(sys.argv[1:] if argv is None else argv)]
    rl_zoo3.train.train()


if __name__ == "__main__":
    main()
