"""Per-layer Kronecker factors for K-FAC.

References:

- Martens & Grosse (2015), "Optimizing Neural Networks with Kronecker-factored Approximate Curvature"
  (K-FAC): the Fisher block of a fully connected layer ``s = W a`` is approximated by ``A (x) G`` with
  ``A = E[a a^T]`` (the input ``a`` with an appended 1 for the bias, §3) and ``G = E[g g^T]``, ``g = dlog p / ds``
  per sample; factored Tikhonov damping with the pi-correction (§6.3).
- Grosse & Martens (2016), "A Kronecker-factored approximate Fisher matrix for convolution layers" (KFC):
  for a convolution with ``|T|`` output locations, ``Omega = E[sum_t a_t a_t^T]`` over the expanded input
  patches ``a_t`` (plus a 1 for the bias) and ``Gamma = E[(1 / |T|) sum_t g_t g_t^T]`` (their eq. 21-22),
  so that ``F ~ Omega (x) Gamma``.
- Wu et al. (2017), ACKTR, and OpenAI baselines' ``acktr/kfac.py`` (its default ``factored_damping=False``): the
  *eigenbasis* damping ``(A (x) G + lambda I)^-1``, exact for the Kronecker-factored Fisher plus ``lambda I``,
  computed from the eigendecompositions ``A = Q_A diag(a) Q_A^T``, ``G = Q_G diag(g) Q_G^T``:
  ``Q_G [(Q_G^T V Q_A) / (g a^T + lambda)] Q_A^T`` (George et al. 2018, "Fast approximate natural gradient
  descent in a Kronecker-factored eigenbasis", use the same basis).

Ideas on structure (one small class per layer kind, bias as an appended ones column instead of a
rewritten model, state keyed by layer name) follow gpauloski/kfac-pytorch; the code is our own.

Conventions: the loss whose gradients are recorded is a *mean* over the ``N`` samples of the batch (as
every SB3 loss is), so the gradient w.r.t. a layer output is ``(1 / N) dlog p_n / ds_n``; it is multiplied
back by ``N`` to obtain per-sample derivatives. Matrices use PyTorch's ``[out, in]`` layout; the
Kronecker product acts on the row-major vectorisation of ``[out, in + 1]``, for which
``(A (x) G)^-1 vec(V) = vec(G^-1 V A^-1)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch as th
import torch.nn.functional as F
from torch import nn

#: Smallest factor trace used in the pi-correction (avoids 0 / 0 for layers that saw no signal).
_TRACE_EPS = 1e-12
#: How the damping enters the inverse of ``A (x) G``: ``"factored"`` ``(A + d_A I) (x) (G + d_G I)`` (Martens & Grosse
#: 2015, §6.3) or ``"eigen"`` ``A (x) G + lambda I`` (OpenAI baselines' ACKTR).
DAMPING_MODES = ("factored", "eigen")


def symmetric_eigh(matrix: th.Tensor, name: str = "") -> tuple[th.Tensor, th.Tensor]:
    """Eigendecomposition of the symmetric part of a (PSD) Kronecker factor.

    The matrix is symmetrised first (running averages accumulate rounding asymmetry); if ``eigh`` fails
    to converge in the factor's precision it is retried in float64. Eigenvalues are clamped at 0: a
    covariance is PSD, negative values are rounding.

    :param matrix: ``[d, d]`` factor.
    :param name: layer name for error messages.
    :return: eigenvalues ``[d]`` (ascending, >= 0) and eigenvectors ``[d, d]`` (columns), in ``matrix.dtype``.
    """
    sym = 0.5 * (matrix + matrix.T)
    try:
        eigvals, eigvecs = th.linalg.eigh(sym)
    except th.linalg.LinAlgError:
        try:
            eigvals, eigvecs = th.linalg.eigh(sym.double())
        except th.linalg.LinAlgError as error:
            raise RuntimeError(
                f"K-FAC: eigendecomposition of a Kronecker factor of layer '{name}' failed even in float64; "
                "the recorded statistics are probably not finite."
            ) from error
        eigvals, eigvecs = eigvals.to(matrix.dtype), eigvecs.to(matrix.dtype)
    return eigvals.clamp(min=0.0), eigvecs


def damped_inverse(matrix: th.Tensor, damping: th.Tensor, name: str = "") -> th.Tensor:
    """``(S + d I)^-1`` for the symmetric part ``S`` of a PSD factor and ``d > 0``.

    A Cholesky factorisation of ``S + d I`` (about ten times cheaper than ``eigh``, which matters for the
    ``3137 x 3137`` factor of NatureCNN's dense layer); if it fails (rounding made ``S + d I`` numerically
    indefinite, or the factor is not finite) the inverse is formed from :func:`symmetric_eigh`, whose
    eigenvalues are clamped at 0 and which retries in float64: ``Q diag(1 / (lambda + d)) Q^T``.

    :param matrix: ``[d, d]`` factor.
    :param damping: 0-d tensor, ``d``.
    :param name: layer name for error messages.
    :return: ``[d, d]`` symmetric positive-definite inverse, in ``matrix.dtype``.
    :raises FloatingPointError: the factor contains NaN/Inf.
    """
    damped = 0.5 * (matrix + matrix.T)
    damped.diagonal().add_(damping)
    cholesky, info = th.linalg.cholesky_ex(damped)
    if int(info) == 0:
        return th.cholesky_inverse(cholesky)
    if not bool(th.isfinite(matrix).all()):
        raise FloatingPointError(
            f"K-FAC: a Kronecker factor of layer '{name}' is not finite (NaN/Inf statistics were recorded)"
        )
    eigvals, eigvecs = symmetric_eigh(matrix, name)
    return (eigvecs / (eigvals + damping)) @ eigvecs.T


class KroneckerFactoredLayer:
    """K-FAC state of one ``nn.Linear`` or ``nn.Conv2d``: running factors, their damped inverses and the
    statistics of the recording context in progress.

    Subclasses define how the rows of ``a`` and ``g`` are extracted from the layer input and output gradient.

    :param name: the layer's name in the module tree (state dicts are keyed by it).
    :param module: the layer.
    """

    def __init__(self, name: str, module: nn.Linear | nn.Conv2d) -> None:
        self.name = name
        self.module = module
        self.has_bias = module.bias is not None
        # The optimized parameters, fixed at construction as an optimizer's param_groups are (a tuple: the
        # step reads it for every layer, and nn.Module attribute lookups are slow)
        self.params: tuple[th.Tensor, ...] = (module.weight,) if module.bias is None else (module.weight, module.bias)
        # Layout of the [out, in (+ 1)] gradient matrix: ``in`` = C * kh * kw for a convolution
        self.n_out = module.weight.shape[0]
        self.n_in = math.prod(module.weight.shape[1:])
        self.n_cols = self.n_in + int(self.has_bias)
        # Running averages of the factors: A [in + 1, in + 1] (in = C * kh * kw for conv), G [out, out]
        self.a_factor: th.Tensor | None = None
        self.g_factor: th.Tensor | None = None
        # What the preconditioner uses (refreshed every Tf steps, and when what it was formed with, ``inverse_key`` =
        # (damping, weight_decay, damping mode), changes). Factored damping: the damped inverses (A + d_A I)^-1 and
        # (G + d_G I)^-1. Eigen damping: the eigenvectors Q_A, Q_G in a_inverse, g_inverse and
        # eigen_scale = 1 / (g a^T + lambda), [out, in + 1].
        self.a_inverse: th.Tensor | None = None
        self.g_inverse: th.Tensor | None = None
        self.eigen_scale: th.Tensor | None = None
        self.inverse_key: tuple[float, float, str] | None = None
        # Batch statistics of the recording context in progress (sums over calls)
        self._a_sum: th.Tensor | None = None
        self._g_sum: th.Tensor | None = None
        self._n_calls = 0
        self.batch_size: int | None = None

    # ------------------------------------------------------------------ statistics
    def input_rows(self, inp: th.Tensor) -> tuple[th.Tensor, int]:
        """Rows ``a_t`` of the layer input, without the bias column.

        :return: ``[N * T, in]`` rows and ``N``, the number of samples.
        """
        raise NotImplementedError

    def grad_rows(self, grad_output: th.Tensor) -> th.Tensor:
        """Rows ``g_t`` of the gradient w.r.t. the layer output (as computed, i.e. still divided by ``N``).

        :return: ``[N * T, out]``.
        """
        raise NotImplementedError

    def accumulate(self, inp: th.Tensor, grad_output: th.Tensor) -> None:
        """Add the factors of one recorded call (input and output gradient) to the context's sums."""
        rows, n_samples = self.input_rows(inp)  # [N * T, in]
        if self.has_bias:
            rows = F.pad(rows, (0, 1), value=1.0)  # [N * T, in + 1], a column of ones appended
        # Omega = (1 / N) sum_{n, t} a a^T  (= E[a a^T] for a dense layer, T = 1)
        a_batch = th.mm(rows.T, rows).div_(n_samples)  # [in + 1, in + 1]
        g_rows = self.grad_rows(grad_output)  # [N * T, out], per-sample derivatives divided by N
        # Gamma = (1 / (N T)) sum_{n, t} (N g)(N g)^T
        g_batch = th.mm(g_rows.T, g_rows).mul_(n_samples * n_samples / g_rows.shape[0])  # [out, out]
        if self._a_sum is None or self._g_sum is None:
            self._a_sum, self._g_sum = a_batch, g_batch
        else:
            self._a_sum.add_(a_batch)
            self._g_sum.add_(g_batch)
        self._n_calls += 1
        self.batch_size = n_samples

    def take_batch(self) -> tuple[th.Tensor, th.Tensor] | None:
        """The context's factors (averaged over its recorded calls), or ``None`` if it recorded nothing; clears them.

        :class:`~sb3_natgrad.optim.KFAC` folds them into the running averages of all its layers at once.
        """
        a_sum, g_sum, n_calls = self._a_sum, self._g_sum, self._n_calls
        self.discard()
        if n_calls == 0 or a_sum is None or g_sum is None:
            return None
        if n_calls > 1:
            a_sum, g_sum = a_sum / n_calls, g_sum / n_calls
        return a_sum, g_sum

    def discard(self) -> None:
        self._a_sum, self._g_sum, self._n_calls = None, None, 0

    # ------------------------------------------------------------------ inverses
    @property
    def ready(self) -> bool:
        return self.a_factor is not None

    def damping_terms(self, damping: float, weight_decay: float) -> tuple[th.Tensor, th.Tensor]:
        """Factored Tikhonov damping (Martens & Grosse 2015, §6.3).

        ``(A + pi gamma I) (x) (G + gamma / pi I)`` with ``gamma = sqrt(damping + weight_decay)`` and
        ``pi = sqrt((tr(A) / dim A) / (tr(G) / dim G))``, the trace-norm choice of pi, from the current
        running factors.

        :return: ``(d_A, d_G)`` as 0-d tensors (no host sync).
        """
        if self.a_factor is None or self.g_factor is None:
            raise RuntimeError(f"K-FAC: layer '{self.name}' has no statistics yet")
        gamma = math.sqrt(damping + weight_decay)
        a_norm = self.a_factor.diagonal().mean().clamp(min=_TRACE_EPS)
        g_norm = self.g_factor.diagonal().mean().clamp(min=_TRACE_EPS)
        pi = th.sqrt(a_norm / g_norm)
        return pi * gamma, gamma / pi

    def update_inverses(self, damping: float, weight_decay: float, mode: str = "factored") -> None:
        """Recompute what :meth:`precondition` uses from the current factors.

        ``mode="factored"``: the damped inverses ``(A + d_A I)^-1`` and ``(G + d_G I)^-1`` (:meth:`damping_terms`).
        ``mode="eigen"``: the eigenvectors ``Q_A``, ``Q_G`` and ``1 / (g a^T + lambda)`` with the eigenvalues ``a``,
        ``g`` (clamped at 0) and ``lambda = damping + weight_decay`` (baselines' ``factored_damping=False``).
        """
        if self.a_factor is None or self.g_factor is None:
            return
        if mode == "eigen":
            a_eigvals, self.a_inverse = symmetric_eigh(self.a_factor, self.name)  # [in + 1], [in + 1, in + 1]
            g_eigvals, self.g_inverse = symmetric_eigh(self.g_factor, self.name)  # [out], [out, out]
            # 1 / (g_i a_j + lambda): the eigenvalues of A (x) G + lambda I in the Kronecker eigenbasis, [out, in + 1]
            self.eigen_scale = th.outer(g_eigvals, a_eigvals).add_(damping + weight_decay).reciprocal_()
        else:
            d_a, d_g = self.damping_terms(damping, weight_decay)
            self.a_inverse = damped_inverse(self.a_factor, d_a, self.name)  # [in + 1, in + 1]
            self.g_inverse = damped_inverse(self.g_factor, d_g, self.name)  # [out, out]
            self.eigen_scale = None
        self.inverse_key = (damping, weight_decay, mode)

    def precondition(self, grad: th.Tensor, out: th.Tensor | None = None) -> th.Tensor:
        """The damped K-FAC inverse applied to ``V``, as of the last :meth:`update_inverses`.

        Factored damping: ``(G + d_G I)^-1 V (A + d_A I)^-1``. Eigen damping:
        ``Q_G [(Q_G^T V Q_A) * eigen_scale] Q_A^T``, i.e. ``(A (x) G + lambda I)^-1 vec(V)``.

        :param grad: ``V``, the gradient as an ``[out, in + 1]`` matrix.
        :param out: write the result into this ``[out, in + 1]`` tensor (contiguous) instead of a new one.
        """
        if self.a_inverse is None or self.g_inverse is None:
            raise RuntimeError(f"K-FAC: layer '{self.name}' has no inverse yet")
        if self.eigen_scale is None:
            return th.mm(th.mm(self.g_inverse, grad), self.a_inverse, out=out)  # [out, in + 1]
        rotated = th.mm(th.mm(self.g_inverse.T, grad), self.a_inverse).mul_(self.eigen_scale)  # [out, in + 1]
        return th.mm(th.mm(self.g_inverse, rotated), self.a_inverse.T, out=out)  # [out, in + 1]

    # ------------------------------------------------------------------ layout
    def write_grad_matrix(self, out: th.Tensor, weight_decay: float) -> None:
        """The layer's gradient (plus ``weight_decay * theta``) written into ``out``, a contiguous ``[out, in (+ 1)]``
        tensor (no allocation)."""
        weight = self.params[0]
        grad_w = weight.grad if weight.grad is not None else th.zeros_like(weight)
        grad_b = self.params[1].grad if self.has_bias else None  # None: zeros
        self.matrix(grad_w, grad_b, out=out)
        if weight_decay != 0.0:
            out.add_(self.matrix(weight, self.params[1] if self.has_bias else None), alpha=weight_decay)

    def matrix(self, weight_like: th.Tensor, bias_like: th.Tensor | None, out: th.Tensor | None = None) -> th.Tensor:
        """Tensors shaped like the weight and the bias in the ``[out, in (+ 1)]`` layout of the gradient matrix
        (``bias_like=None``: a zero bias column), written into ``out`` if given."""
        weight = weight_like.reshape(self.n_out, self.n_in)
        if not self.has_bias:
            return weight if out is None else out.copy_(weight)
        bias = bias_like if bias_like is not None else weight.new_zeros(self.n_out)
        return th.cat([weight, bias.unsqueeze(1)], dim=1, out=out)

    def split(self, matrix: th.Tensor) -> list[th.Tensor]:
        """Inverse of :meth:`matrix`'s layout: one tensor per parameter, shaped like it."""
        out = [matrix[:, : self.n_in].reshape(self.params[0].shape)]
        if self.has_bias:
            out.append(matrix[:, self.n_in])
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "a_factor": self.a_factor,
            "g_factor": self.g_factor,
            "a_inverse": self.a_inverse,
            "g_inverse": self.g_inverse,
            "eigen_scale": self.eigen_scale,
            "inverse_key": self.inverse_key,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device, dtype = self.params[0].device, self.params[0].dtype
        for key in ("a_factor", "g_factor", "a_inverse", "g_inverse", "eigen_scale"):
            value = state.get(key)  # states of earlier versions have no eigen_scale (factored damping only)
            setattr(self, key, None if value is None else value.to(device=device, dtype=dtype).clone())
        inverse_key = state.get("inverse_key")
        if inverse_key is None or self.a_inverse is None:
            self.inverse_key = None
        else:  # earlier versions stored (damping, weight_decay), always factored
            mode = str(inverse_key[2]) if len(inverse_key) > 2 else "factored"
            self.inverse_key = (float(inverse_key[0]), float(inverse_key[1]), mode)
        self.discard()


class LinearFactors(KroneckerFactoredLayer):
    """``nn.Linear``: ``a`` is the input; leading dimensions other than the batch count as locations ``T``."""

    module: nn.Linear

    def input_rows(self, inp: th.Tensor) -> tuple[th.Tensor, int]:
        return inp.reshape(-1, inp.shape[-1]), inp.shape[0]

    def grad_rows(self, grad_output: th.Tensor) -> th.Tensor:
        return grad_output.reshape(-1, grad_output.shape[-1])


class Conv2dFactors(KroneckerFactoredLayer):
    """``nn.Conv2d`` (KFC): ``a_t`` are the expanded input patches ``[C * kh * kw]`` at each output location."""

    module: nn.Conv2d

    def input_rows(self, inp: th.Tensor) -> tuple[th.Tensor, int]:
        conv = self.module
        assert not isinstance(conv.padding, str)  # excluded by make_layer_factors
        # [N, C * kh * kw, T], patch layout (C, kh, kw) matches weight.reshape(out, -1)
        patches = F.unfold(inp, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1]), inp.shape[0]

    def grad_rows(self, grad_output: th.Tensor) -> th.Tensor:
        # [N, out, H', W'] -> [N * H' * W', out]
        return grad_output.permute(0, 2, 3, 1).reshape(-1, grad_output.shape[1])


def make_layer_factors(name: str, module: nn.Module) -> KroneckerFactoredLayer | None:
    """K-FAC state for a supported layer, or ``None`` (grouped, string-padded (``"same"``) or non-zero-padded
    convolutions and other modules are left to the optimizer's fallback)."""
    if isinstance(module, nn.Linear):
        return LinearFactors(name, module)
    if (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    ):
        return Conv2dFactors(name, module)
    return None
