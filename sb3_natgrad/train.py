"""``python -m sb3_natgrad.train``: rl-zoo3's ``train`` with the plugin's algorithms registered.

Every ``rl_zoo3.train`` flag is accepted. For a plugin algorithm the default ``--conf-file`` is the
plugin's ``hyperparams/<algo>.yml``; an explicit ``--conf-file`` wins.

Distributed tuning (``-optimize --storage URL --study-name S``, see :mod:`sb3_natgrad.tuning`): ``--storage
env:NAME`` reads the URL from the environment variable ``NAME``, and the URL's password is kept out of what the
zoo writes and prints. For that, ``rl_zoo3.train.ExperimentManager`` (the name the zoo's ``train()`` looks up) is
replaced by :class:`sb3_natgrad.tuning.TuningExperimentManager`, a subclass; rl-zoo3's files are not changed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sb3_natgrad.zoo import register, with_default_conf_file


def main(argv: Sequence[str] | None = None) -> None:
    register()
    import rl_zoo3.train

    from sb3_natgrad.tuning import TuningExperimentManager, prepare_argv

    args = prepare_argv(with_default_conf_file(sys.argv[1:] if argv is None else argv))
    sys.argv = [sys.argv[0], *args]
    rl_zoo3.train.ExperimentManager = TuningExperimentManager  # type: ignore[misc]
    rl_zoo3.train.train()


if __name__ == "__main__":
    main()
