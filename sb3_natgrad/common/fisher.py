"""Fisher-vector products for the policies of Stable-Baselines3.

The natural gradient (Amari, 1998, "Natural gradient works efficiently in learning"; Kakade, 2002,
"A natural policy gradient") and TRPO (Schulman et al., 2015, "Trust Region Policy Optimization",
Appendix C) need products ``F v`` with the Fisher information matrix of the policy, which is also the
Hessian of the mean KL divergence ``KL(pi_old || pi_theta)`` at ``theta = theta_old``.

sb3-contrib obtains it by differentiating the gradient of the KL a second time (double backprop through
the whole KL graph, second derivatives of every activation included). Here we use the Gauss-Newton
structure of the Fisher instead (Martens, 2014, "New insights and perspectives on the natural gradient
method", Sec. 9; Schulman's thesis, 2016, Sec. 3.12): with ``phi_n = phi(s_n; theta)`` the parameters of
the action distribution in state ``s_n`` (logits, or mean and standard deviation) and ``M_n`` the
Fisher of that distribution with respect to ``phi`` (known in closed form),

    ``F v = (1/N) sum_n J_n^T M_n J_n v``,    ``J_n = d phi_n / d theta``.

Each product is one Jacobian-vector product ``J v``, a cheap multiplication by ``M`` and one
vector-Jacobian product ``J^T w``. ``J v`` is obtained from the graph of ``J^T u`` (built once, linear in
a dummy ``u``) by one more reverse pass (the "double-vjp" trick, Townsend, 2017, "A new trick for
calculating Jacobian vector products"): nothing is recomputed from scratch, no second derivative of the
network's activations is ever taken, and the forward pass is shared with the caller's surrogate loss.

Analytic Fisher ``M`` with respect to the distribution parameters used here:

- Categorical (logits ``l``, probabilities ``p``): ``diag(p) - p p^T``; MultiCategorical: one such
  block per action dimension; Bernoulli (logit ``l``): ``p (1 - p)``.
- Diagonal Gaussian (mean ``mu``, standard deviation ``sigma``): ``1 / sigma^2`` for the mean and
  ``2 / sigma^2`` for ``sigma`` (equivalently ``2`` for ``log sigma``). This covers SB3's
  ``DiagGaussianDistribution``, ``SquashedDiagGaussianDistribution`` (``tanh`` is a bijection, the KL and
  thus the Fisher are those of the underlying Gaussian) and ``StateDependentNoiseDistribution`` (gSDE: a
  diagonal Gaussian whose ``sigma(s)`` depends on the state through the exploration features).

For any other distribution, :class:`KLHessianVectorProduct` is the generic double-backprop fallback.

KL reduction over action dimensions. For factorized distributions (diagonal Gaussian, gSDE, Bernoulli)
SB3's ``kl_divergence`` returns one KL per action dimension, ``[N, d]``, and sb3-contrib's TRPO takes
``.mean()`` of it: its trust region bounds the KL *averaged over action dimensions*, i.e. the KL of the
joint action distribution divided by ``d``. ``kl_reduction="mean"`` reproduces that convention (the
metrics are divided by ``d``; MultiCategorical is summed over its components by SB3 in both cases);
``kl_reduction="sum"`` (the default here) is the KL of the joint distribution, as in the TRPO paper.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch as th
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
    kl_divergence,
)
from torch import nn
from torch.distributions import Bernoulli, Categorical, Normal

from sb3_natgrad.common.validation import check_choice, check_int, check_number

#: ``u -> M u`` for one output tensor of shape ``[N, k]`` (the Fisher of the distribution wrt that output).
Metric = Callable[[th.Tensor], th.Tensor]

KL_REDUCTIONS = ("sum", "mean")


def mean_kl(dist_old: Distribution, dist_new: Distribution, kl_reduction: str = "sum") -> th.Tensor:
    """Mean over states of ``KL(dist_old || dist_new)``, a scalar.

    :param kl_reduction: ``"sum"``: KL of the joint action distribution; ``"mean"``: SB3's
        ``kl_divergence(...).mean()``, which averages factorized distributions over action dimensions
    """
    check_choice("mean_kl", "kl_reduction", kl_reduction, KL_REDUCTIONS)
    kl = kl_divergence(dist_old, dist_new)  # [N] or [N, d]
    if kl_reduction == "sum" and kl.dim() > 1:
        kl = kl.sum(dim=-1)
    return kl.mean()


def flatten(tensors: Sequence[th.Tensor]) -> th.Tensor:
    """Concatenate tensors into one flat vector (in the order given)."""
    return th.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: th.Tensor, like: Sequence[th.Tensor]) -> list[th.Tensor]:
    """Split a flat vector into views shaped like ``like`` (the inverse of :func:`flatten`)."""
    chunks = th.split(vector, [t.numel() for t in like])
    return [chunk.view_as(t) for chunk, t in zip(chunks, like, strict=True)]


def _categorical_metric(probs: th.Tensor) -> Metric:
    # M u = diag(p) u - p (p^T u), per row; probs: [N, n]
    return lambda u: probs * u - probs * (probs * u).sum(dim=-1, keepdim=True)


def _diagonal_metric(weights: th.Tensor) -> Metric:
    # M u = w * u for a diagonal metric; weights: [N, k]
    return lambda u: weights * u


def _normal_blocks(dist: Normal, scale: float) -> tuple[list[th.Tensor], list[Metric]]:
    inv_var = dist.scale.detach().pow(-2) * scale  # [N, d]
    # Fisher of N(mu, sigma^2) wrt (mu, sigma) is diag(1/sigma^2, 2/sigma^2)
    return [dist.loc, dist.scale], [_diagonal_metric(inv_var), _diagonal_metric(2.0 * inv_var)]


def analytic_fisher_supported(distribution: Distribution) -> bool:
    """Whether :meth:`FisherVectorProduct.from_distribution` knows the Fisher of this distribution."""
    return isinstance(
        distribution,
        DiagGaussianDistribution  # includes SquashedDiagGaussianDistribution
        | StateDependentNoiseDistribution
        | CategoricalDistribution
        | MultiCategoricalDistribution
        | BernoulliDistribution,
    )


def distribution_outputs(distribution: Distribution, kl_reduction: str = "sum") -> tuple[list[th.Tensor], list[Metric]]:
    """The tensors ``phi`` parametrizing an SB3 distribution and the analytic Fisher ``M`` wrt each.

    :param distribution: an SB3 distribution whose ``proba_distribution`` has been called with grad enabled
    :param kl_reduction: ``"sum"`` or ``"mean"`` over the dimensions of factorized distributions (see module doc)
    :return: outputs ``phi`` (each ``[N, k]``, still attached to the graph) and one metric per output
    :raises ValueError: for a distribution without a known analytic Fisher
    """
    check_choice("distribution_outputs", "kl_reduction", kl_reduction, KL_REDUCTIONS)

    def dim_scale(dim: int) -> float:
        return 1.0 / dim if kl_reduction == "mean" else 1.0

    if isinstance(distribution, DiagGaussianDistribution | StateDependentNoiseDistribution):
        normal: Normal = distribution.distribution
        return _normal_blocks(normal, dim_scale(normal.loc.shape[-1]))
    if isinstance(distribution, CategoricalDistribution):
        cat: Categorical = distribution.distribution
        return [cat.logits], [_categorical_metric(cat.probs.detach())]
    if isinstance(distribution, MultiCategoricalDistribution):
        cats: list[Categorical] = distribution.distribution
        return [c.logits for c in cats], [_categorical_metric(c.probs.detach()) for c in cats]
    if isinstance(distribution, BernoulliDistribution):
        bern: Bernoulli = distribution.distribution
        probs = bern.probs.detach()  # [N, k]
        return [bern.logits], [_diagonal_metric(probs * (1.0 - probs) * dim_scale(probs.shape[-1]))]
    raise ValueError(f"No analytic Fisher for distribution {type(distribution).__name__}; use fisher='hessian'")


def detach_distribution(distribution: Distribution, index: slice | th.Tensor | None = None) -> Distribution:
    """A copy of an SB3 distribution whose parameters are detached from the graph (``pi_old``), optionally
    restricted to the batch rows ``index``.

    SB3 policies return their single ``action_dist`` object from ``get_distribution`` and overwrite it on
    the next call, so the copy is needed to keep the old policy around.

    :param distribution: an SB3 distribution over a batch ``[B, ...]``.
    :param index: rows to keep (a slice or a tensor of indices, as :func:`index_observations`); ``None``: all.
    :raises ValueError: for a distribution type this function does not know
    """
    rows = slice(None) if index is None else index

    def detach(tensor: th.Tensor) -> th.Tensor:
        return tensor.detach()[rows]

    old = copy.copy(distribution)
    inner = distribution.distribution
    if isinstance(inner, Normal):
        old.distribution = Normal(detach(inner.loc), detach(inner.scale), validate_args=False)
    elif isinstance(inner, Categorical):
        old.distribution = Categorical(logits=detach(inner.logits), validate_args=False)
    elif isinstance(inner, Bernoulli):
        old.distribution = Bernoulli(logits=detach(inner.logits), validate_args=False)
    elif isinstance(inner, list) and all(isinstance(c, Categorical) for c in inner):
        cats: list[Categorical] = inner  # type: ignore[assignment]
        old.distribution = [Categorical(logits=detach(c.logits), validate_args=False) for c in cats]
    else:
        raise ValueError(f"Cannot detach distribution {type(distribution).__name__}")
    return old


class FisherVectorProduct:
    """``v -> F v + damping v`` with ``F = (1/N) sum_n J_n^T M_n J_n`` (Gauss-Newton form of the Fisher).

    Build it once per update (it keeps the graph of the outputs), then call it with flat vectors, e.g.
    from :func:`sb3_natgrad.common.cg.conjugate_gradient`. The same class gives the Gauss-Newton matrix
    ``(1/N) J^T J`` of a regression (identity metric), used for TRPO's constrained value regression.

    :param outputs: tensors ``phi`` of shape ``[N, k_i]`` computed from ``params`` with grad enabled
    :param metrics: for each output, the map ``u -> M u`` (a tensor of the same shape), ``M`` symmetric PSD
    :param params: the parameters ``theta`` (the order defines the layout of the flat vectors)
    :param damping: Tikhonov damping ``lambda`` added as ``+ lambda v``
    """

    def __init__(
        self,
        outputs: Sequence[th.Tensor],
        metrics: Sequence[Metric],
        params: Sequence[nn.Parameter],
        damping: float = 0.0,
    ) -> None:
        check_number("FisherVectorProduct", "damping", damping, 0.0)
        if len(outputs) != len(metrics) or len(outputs) == 0:
            raise ValueError(f"Need one metric per output, got {len(outputs)} outputs and {len(metrics)} metrics")
        self.outputs = list(outputs)
        self.metrics = list(metrics)
        self.params = list(params)
        self.damping = damping
        self.n_samples = self.outputs[0].shape[0]
        self.n_params = sum(p.numel() for p in self.params)
        self.n_products = 0
        # Graph of g(u) = J^T u, linear in the dummy u (its value is irrelevant): d(g . v)/du = J v.
        self._dummies = [th.zeros_like(out, requires_grad=True) for out in self.outputs]
        grads = th.autograd.grad(self.outputs, self.params, grad_outputs=self._dummies, create_graph=True, allow_unused=True)
        # Parameters the outputs do not depend on contribute nothing to J v (and get zeros in J^T w).
        self._linked = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        self._jt_u = [grads[i] for i in self._linked]

    @classmethod
    def from_distribution(
        cls, distribution: Distribution, params: Sequence[nn.Parameter], damping: float = 0.0, kl_reduction: str = "sum"
    ) -> FisherVectorProduct:
        """Fisher-vector product of an SB3 action distribution (see :func:`distribution_outputs`)."""
        outputs, metrics = distribution_outputs(distribution, kl_reduction)
        return cls(outputs, metrics, params, damping)

    @classmethod
    def from_policy(
        cls,
        policy: nn.Module,
        observations: th.Tensor | dict[str, th.Tensor],
        params: Sequence[nn.Parameter],
        damping: float = 0.0,
        sub_sampling_factor: int = 1,
        kl_reduction: str = "sum",
    ) -> FisherVectorProduct:
        """Fisher-vector product of ``policy.get_distribution(observations)``.

        :param sub_sampling_factor: keep one state out of ``sub_sampling_factor`` (Schulman's thesis,
            Sec. 3.12: the Fisher can be estimated on a fraction of the batch at a fraction of the cost)
        """
        check_int("FisherVectorProduct", "sub_sampling_factor", sub_sampling_factor)
        if sub_sampling_factor > 1:
            observations = subsample(observations, sub_sampling_factor)
        distribution = policy.get_distribution(observations)  # type: ignore[operator]
        return cls.from_distribution(distribution, params, damping, kl_reduction)

    def jvp(self, vector: th.Tensor) -> list[th.Tensor]:
        """``J v`` for a flat ``vector`` of size ``n_params``: one tensor per output, shaped like it."""
        pieces = unflatten(vector, self.params)
        return list(
            th.autograd.grad(
                self._jt_u, self._dummies, grad_outputs=[pieces[i] for i in self._linked], retain_graph=True, allow_unused=True
            )
        )

    def vjp(self, cotangents: Sequence[th.Tensor | None]) -> th.Tensor:
        """``J^T w`` as a flat vector, for one cotangent ``w`` per output."""
        pairs = [(out, w) for out, w in zip(self.outputs, cotangents, strict=True) if w is not None]
        grads = th.autograd.grad(
            [out for out, _ in pairs],
            self.params,
            grad_outputs=[w for _, w in pairs],
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        return flatten(grads)

    def __call__(self, vector: th.Tensor) -> th.Tensor:
        """``F v + damping v`` for a flat ``vector`` of size ``n_params``."""
        self.n_products += 1
        jv = self.jvp(vector)
        # (1/N) M_n J_n v, per output: [N, k_i]
        cotangents = [None if j is None else metric(j) / self.n_samples for j, metric in zip(jv, self.metrics, strict=True)]
        fv = self.vjp(cotangents)
        if self.damping > 0:
            fv = fv + self.damping * vector
        return fv


class KLHessianVectorProduct:
    """``v -> H v + damping v`` with ``H`` the Hessian of a scalar (the mean KL) by double backprop.

    The generic fallback for distributions without an analytic Fisher, and the way sb3-contrib computes
    TRPO's products (Schulman et al., 2015, Appendix C.1). At ``theta = theta_old``, ``H`` equals the
    Fisher information matrix.

    :param kl: scalar mean KL divergence ``KL(pi_old || pi_theta)`` computed with grad enabled
    :param params: the parameters ``theta``
    :param damping: Tikhonov damping added as ``+ damping v``
    """

    def __init__(self, kl: th.Tensor, params: Sequence[nn.Parameter], damping: float = 0.0) -> None:
        check_number("KLHessianVectorProduct", "damping", damping, 0.0)
        self.params = list(params)
        self.damping = damping
        self.n_params = sum(p.numel() for p in self.params)
        self.n_products = 0
        grads = th.autograd.grad(kl, self.params, create_graph=True, allow_unused=True, materialize_grads=True)
        self._grad_kl = flatten(grads)

    def __call__(self, vector: th.Tensor) -> th.Tensor:
        """``H v + damping v`` for a flat ``vector`` of size ``n_params``."""
        self.n_products += 1
        hv = th.autograd.grad(
            (self._grad_kl * vector).sum(), self.params, retain_graph=True, allow_unused=True, materialize_grads=True
        )
        out = flatten(hv)
        if self.damping > 0:
            out = out + self.damping * vector
        return out


def index_observations(
    observations: th.Tensor | dict[str, th.Tensor], index: slice | th.Tensor
) -> th.Tensor | dict[str, th.Tensor]:
    """Rows ``index`` (a slice or a tensor of indices) of a batch of observations, for tensors and dict observations."""
    if isinstance(observations, dict):
        return {key: obs[index] for key, obs in observations.items()}
    return observations[index]


def concat_observations(batches: Sequence[th.Tensor | dict[str, th.Tensor]]) -> th.Tensor | dict[str, th.Tensor]:
    """Batches of observations stacked along the batch dimension, for tensors and dict observations (same keys)."""
    first = batches[0]
    if isinstance(first, dict):
        return {key: th.cat([batch[key] for batch in batches]) for key in first}  # type: ignore[index]
    return th.cat(batches)  # type: ignore[arg-type]


def subsample(observations: th.Tensor | dict[str, th.Tensor], step: int) -> th.Tensor | dict[str, th.Tensor]:
    """Every ``step``-th observation (``obs[::step]``), for tensors and dict observations."""
    return index_observations(observations, slice(None, None, step))


def sample_fisher_actions(distribution: Distribution) -> th.Tensor:
    """Actions sampled from the current policy for a sampled Fisher, without gradient.

    Martens & Grosse (2015) §5 / Wu et al. (2017) §3.1: the Fisher is the covariance of the score at
    *model-sampled* targets, so statistics use ``a~ ~ pi(. | s)``, never the rollout's actions.

    For gSDE the fresh sample comes from the per-state Gaussian ``N(mu(s), sigma(s))`` rather than from the
    exploration matrix that ``sample()`` reuses between resets.
    """
    with th.no_grad():
        if isinstance(distribution, StateDependentNoiseDistribution):
            actions = distribution.distribution.sample()
            if distribution.bijector is not None:
                actions = distribution.bijector.forward(actions)
            return actions
        return distribution.sample().detach()
