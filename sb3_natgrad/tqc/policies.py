"""Policies for TQC: sb3-contrib's, reused unchanged (squashed Gaussian actor, ``n_critics`` quantile critics).

A K-FAC critic (``critic_optimizer="kfac"``) needs no other network: :class:`~sb3_natgrad.tqc.TQC` replaces the
critic's Adam by :class:`~sb3_natgrad.optim.KFAC` over the same parameters.
"""

from sb3_contrib.tqc.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, TQCPolicy

__all__ = ["CnnPolicy", "MlpPolicy", "MultiInputPolicy", "TQCPolicy"]
