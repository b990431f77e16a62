"""K-FAC: Kronecker-factored approximate natural gradient with a KL trust region.

References:

- Martens & Grosse (2015), "Optimizing Neural Networks with Kronecker-factored Approximate Curvature":
  block-diagonal Fisher ``F ~ diag_l(A_l (x) G_l)``, running averages of the factors, factored Tikhonov
  damping with the pi-correction (§6.3).
- Grosse & Martens (2016), "A Kronecker-factored approximate Fisher matrix for convolution layers" (KFC).
- Wu et al. (2017), "Scalable trust-region method for deep reinforcement learning using Kronecker-factored
  approximation" (ACKTR), §3.2: the step ``-eta dtheta`` with ``dtheta = F^-1 grad`` and
  ``eta = min(eta_max, sqrt(2 delta / (dtheta^T F dtheta)))``; its code (OpenAI baselines ``acktr/kfac.py``,
  ``factored_damping=False``) damps in the factors' eigenbasis, ``(A (x) G + lambda I)^-1`` (``damping_mode="eigen"``).

Usage::

    opt = KFAC(model, lr=0.25, kl_clip=0.001)
    with opt.record_stats() as recording:        # forward *and* Fisher backward inside the context
        out = model(x)
        if recording:
            opt.fisher_backward(sampled_nll(out))  # e.g. -log p(y_sampled | x), y ~ model
    opt.zero_grad()
    loss_fn(out, y).backward()                      # outside the context: statistics are untouched
    opt.step()

What ``step`` computes (``g`` is the gradient plus ``weight_decay * theta``):

1. ``dtheta_l = (G_l + d_G I)^-1 g_l (A_l + d_A I)^-1`` per K-FAC layer, ``d_A = pi gamma``,
   ``d_G = gamma / pi``, ``gamma = sqrt(damping + weight_decay)`` (``damping_mode="factored"``), or
   ``vec(dtheta_l) = (A_l (x) G_l + lambda I)^-1 vec(g_l)`` with ``lambda = damping + weight_decay``, computed in the
   eigenbasis of the factors (``damping_mode="eigen"``); other parameters use the fallback (see :class:`KFAC`).
2. ``v = sum_l <g_l, dtheta_l> = dtheta^T F_damped dtheta`` where ``F_damped`` is the damped block-diagonal
   K-FAC Fisher *as of the last inverse update* (between updates the factors keep moving; the
   preconditioner and hence the trust region use the inverted ones). Since every damping term is
   PSD, ``dtheta^T F_kfac dtheta <= v``: ``v`` is a (cheap) upper bound on the Fisher norm of the step.
   OpenAI baselines' ``kfac.py`` computes the same quantity (times ``lr^2``).
3. ``eta = min(lr, sqrt(2 kl_clip / v))``, so that the quadratic model of the KL divergence of the fresh
   step, ``0.5 eta^2 dtheta^T F dtheta``, is at most ``kl_clip``. (Baselines compares ``lr^2 v`` with its
   ``clip_kl`` without the factor 2, i.e. its ``clip_kl`` is ``2 kl_clip`` here.)
4. With momentum ``m``: ``buf = m buf + (1 - m) eta dtheta`` and ``theta -= buf`` (baselines uses the same
   ``lr (1 - m)`` normalisation); ``buf`` is a convex combination of trust-region-bounded steps. With
   ``m = 0``: ``theta -= eta dtheta``.

``last_step_info`` holds (as floats) ``step_size`` = eta, ``kl`` = ``0.5 eta^2 v`` (the bound of 3.),
``fisher_norm`` = ``v`` and ``damping``. Reading ``v`` is the step's one host sync; it doubles as the
NaN/Inf check (``v`` is non-finite iff a gradient or a factor is).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch as th
from torch import nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from sb3_natgrad.common.validation import check_choice, check_int, check_number
from sb3_natgrad.optim.kfac_layers import DAMPING_MODES, KroneckerFactoredLayer, make_layer_factors
from sb3_natgrad.optim.step_buffers import StepBuffers

FALLBACKS = ("diagonal", "identity")


class KFAC(Optimizer):
    """K-FAC natural-gradient optimizer with an ACKTR trust region (Martens & Grosse 2015; Wu et al. 2017).

    Every ``nn.Linear`` and ``nn.Conv2d`` (``groups=1``, zero padding) of ``model`` whose parameters are
    all optimized gets Kronecker factors; the other optimized parameters (e.g. SB3's bare ``log_std``)
    use the ``fallback`` preconditioner:

    - ``"diagonal"``: a running average ``D`` of ``N * grad_fisher^2`` recorded in the same context as the
      factors (``grad_fisher`` is the gradient of the *mean* sampled Fisher loss over ``N`` samples; the
      score has zero mean under the model, so ``N E[grad_fisher^2]`` is the diagonal of the Fisher), and
      ``dtheta = g / (D + damping + weight_decay)``;
    - ``"identity"``: ``dtheta = g`` (OpenAI baselines' treatment of parameters without factors).

    Statistics are recorded only inside :meth:`record_stats` (active every ``stats_interval`` steps),
    only for modules in training mode. Both the forward pass and the backward pass of the sampled Fisher
    loss must happen inside the context: a forward hook keeps each layer's input and output, and
    :meth:`fisher_backward` (not ``loss.backward()``, which records nothing) obtains the gradients of those
    outputs from ``torch.autograd.grad``, without touching ``.grad``. The loss must be a mean over the batch
    (the batch size ``N`` is the leading dimension of each layer input). The damped inverses are refreshed every
    ``inverse_interval`` steps: Cholesky inverses of the factored-damped factors (with an ``eigh`` fallback that
    retries in float64; see :func:`~sb3_natgrad.optim.kfac_layers.damped_inverse`), or with ``damping_mode="eigen"``
    the factors' eigendecompositions (:meth:`~sb3_natgrad.optim.kfac_layers.KroneckerFactoredLayer.update_inverses`).

    Hyperparameters live in the single parameter group (``lr``, ``kl_clip``, ``damping``,
    ``weight_decay``, ``momentum``, ``stat_decay``) so that learning-rate schedules writing
    ``param_groups[0]["lr"]`` apply. ``state_dict`` stores the factors, damped inverses and step
    counter keyed by layer name.

    :param model: module tree to precondition (its ``named_modules`` names key the state dict), or a
        sequence of ``(name, module)`` pairs.
    :param lr: ``eta_max``, the largest step scale (>= 0).
    :param params: parameters to optimize (default: all parameters of ``model`` that require grad).
    :param kl_clip: trust-region radius ``delta`` on the quadratic KL model of the step; ``None`` disables
        the trust region (``eta = lr``).
    :param damping: Tikhonov damping ``lambda`` (> 0).
    :param damping_mode: ``"factored"``: ``(A + pi gamma I) (x) (G + gamma / pi I)``, ``gamma = sqrt(lambda)``
        (Martens & Grosse 2015, §6.3); ``"eigen"``: ``A (x) G + lambda I`` inverted exactly in the eigenbasis of the
        factors (OpenAI baselines' ACKTR). Both add ``weight_decay`` to ``lambda``.
    :param weight_decay: L2 coefficient; added to the gradient and to the damping (M&G 2015 §6.3).
    :param momentum: momentum ``m`` in ``[0, 1)``, with ``(1 - m)`` normalisation.
    :param stat_decay: running-average decay of the factors in ``[0, 1)``.
    :param stats_interval: ``T_s``, record statistics every this many steps.
    :param inverse_interval: ``T_f``, recompute the damped inverses every this many steps.
    :param fallback: ``"diagonal"`` or ``"identity"``, for parameters without Kronecker factors.
    """

    def __init__(
        self,
        model: nn.Module | Sequence[tuple[str, nn.Module]],
        lr: float = 0.25,
        *,
        params: Iterable[nn.Parameter] | None = None,
        kl_clip: float | None = 0.001,
        damping: float = 0.01,
        damping_mode: str = "factored",
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        stat_decay: float = 0.99,
        stats_interval: int = 1,
        inverse_interval: int = 10,
        fallback: str = "diagonal",
    ) -> None:
        check_number("KFAC", "lr", lr, 0.0)  # 0 is a valid (frozen) rate, e.g. rl-zoo's enjoy loads with lr 0
        check_number("KFAC", "kl_clip", kl_clip, 0.0, low_open=True, allow_none=True)
        check_number("KFAC", "damping", damping, 0.0, low_open=True)
        check_number("KFAC", "weight_decay", weight_decay, 0.0)
        check_number("KFAC", "momentum", momentum, 0.0, 1.0, high_open=True)
        check_number("KFAC", "stat_decay", stat_decay, 0.0, 1.0, high_open=True)
        check_int("KFAC", "stats_interval", stats_interval)
        check_int("KFAC", "inverse_interval", inverse_interval)
        check_choice("KFAC", "fallback", fallback, FALLBACKS)
        check_choice("KFAC", "damping_mode", damping_mode, DAMPING_MODES)

        named_modules = list(model.named_modules()) if isinstance(model, nn.Module) else list(model)
        if params is None:
            module_params = (p for _, m in named_modules for p in m.parameters(recurse=False))
            params = [p for p in module_params if p.requires_grad]
        param_list = list(dict.fromkeys(params))  # unique, ordered
        if not param_list:
            raise ValueError("KFAC: got an empty list of parameters to optimize")
        param_ids = {id(p) for p in param_list}

        layers: list[KroneckerFactoredLayer] = []
        seen_modules: set[int] = set()
        for name, module in named_modules:
            if id(module) in seen_modules:
                continue
            seen_modules.add(id(module))
            layer = make_layer_factors(name, module)
            if layer is not None and all(id(p) in param_ids for p in layer.params):
                layers.append(layer)
        layer_param_ids = {id(p) for layer in layers for p in layer.params}

        defaults = dict(
            lr=lr,
            kl_clip=kl_clip,
            damping=damping,
            weight_decay=weight_decay,
            momentum=momentum,
            stat_decay=stat_decay,
        )
        super().__init__(param_list, defaults)
        self.layers = layers
        self.fallback = fallback
        self.damping_mode = damping_mode
        self.fallback_params = [p for p in param_list if id(p) not in layer_param_ids]
        self.stats_interval = stats_interval
        self.inverse_interval = inverse_interval
        self.steps = 0
        self._recording = False
        # (layer, detached input, output) of each recorded forward call, in call order
        self._captured: list[tuple[KroneckerFactoredLayer, th.Tensor, th.Tensor]] = []
        self._diag_grads: dict[int, th.Tensor] = {}
        # Forward hooks exist only inside a recording context: a module with hooks leaves PyTorch's fast call
        # path, which cost every other forward pass (updates, rollouts) ~3 us per layer
        self._hooks = [(layer.module, self._forward_hook(layer)) for layer in self.layers]
        self._handles: list[RemovableHandle] = []
        self._hooks_removed = False
        self.last_step_info: dict[str, float] = {}
        self._buffers: StepBuffers | None = None

    # ------------------------------------------------------------------ hooks
    def _forward_hook(self, layer: KroneckerFactoredLayer) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[th.Tensor, ...], output: th.Tensor) -> None:
            if module.training and output.requires_grad:  # attached only while recording
                self._captured.append((layer, inputs[0].detach(), output))

        return hook

    def _attach_hooks(self) -> None:
        if not self._hooks_removed:
            self._handles = [module.register_forward_hook(hook) for module, hook in self._hooks]

    def _detach_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def remove_hooks(self) -> None:
        """Detach the optimizer from the model (it can no longer record statistics)."""
        self._detach_hooks()
        self._hooks_removed = True

    # ------------------------------------------------------------------ statistics
    @property
    def stats_due(self) -> bool:
        """Whether the next :meth:`record_stats` context records (every ``stats_interval`` steps)."""
        return self.steps % self.stats_interval == 0

    @contextmanager
    def record_stats(self, force: bool = False, batch_size: int | None = None) -> Iterator[bool]:
        """Context in which forward passes and the sampled Fisher loss backward record K-FAC statistics.

        Yields whether statistics are recorded this step (``stats_due`` or ``force``); when it yields
        ``False`` nothing is captured and the caller may skip the Fisher backward. On a normal exit the
        batch statistics are folded into the running averages; on an exception they are discarded.

        :param force: record even if ``stats_due`` is False.
        :param batch_size: ``N`` for the diagonal fallback, inferred from the layer inputs when omitted.
        """
        active = force or self.stats_due
        if self._recording:
            raise RuntimeError("KFAC.record_stats() contexts cannot be nested")
        self._recording = active
        if active:
            self._attach_hooks()
        try:
            yield active
        except BaseException:
            self._clear_batch()
            raise
        finally:
            self._recording = False
            self._detach_hooks()
        if active:
            self._fold(batch_size)

    def _diagonal_params(self) -> list[th.Tensor]:
        """Fallback parameters whose diagonal Fisher is recorded (none with the ``"identity"`` fallback)."""
        return [p for p in self.fallback_params if p.requires_grad] if self.fallback == "diagonal" else []

    def fisher_inputs(self) -> list[th.Tensor]:
        """Tensors whose gradients the recording needs: captured layer outputs and diagonal-fallback params."""
        return [output for _, _, output in self._captured] + self._diagonal_params()

    def accumulate(self, grads: Sequence[th.Tensor | None]) -> None:
        """Record the gradients of :meth:`fisher_inputs` (in its order; ``None`` where unused) into the statistics."""
        n_outputs = len(self._captured)
        for (layer, inp, _), grad_output in zip(self._captured, grads[:n_outputs], strict=True):
            if grad_output is not None:
                layer.accumulate(inp, grad_output)
        for param, grad in zip(self._diagonal_params(), grads[n_outputs:], strict=True):
            if grad is not None:
                previous = self._diag_grads.get(id(param))
                self._diag_grads[id(param)] = grad if previous is None else previous + grad

    def fisher_backward(self, fisher_loss: th.Tensor, retain_graph: bool = True) -> None:
        """Backpropagate the sampled Fisher loss to record statistics, without writing ``.grad``.

        Must be called inside :meth:`record_stats`. See :func:`fisher_backward` for several optimizers.
        """
        fisher_backward(fisher_loss, [self], retain_graph=retain_graph)

    def _fold(self, batch_size: int | None) -> None:
        # factor = decay * factor + (1 - decay) * batch, all layers at once
        decay = self.param_groups[0]["stat_decay"]
        running: list[th.Tensor] = []
        batches: list[th.Tensor] = []
        for layer in self.layers:
            batch = layer.take_batch()
            if batch is None:
                continue
            if batch_size is None and layer.batch_size is not None:
                batch_size = layer.batch_size
            if layer.a_factor is None or layer.g_factor is None:
                layer.a_factor, layer.g_factor = batch  # the first batch initialises the running averages
            else:
                running += [layer.a_factor, layer.g_factor]
                batches += batch
        if running:
            th._foreach_mul_(running, decay)
            th._foreach_add_(running, batches, alpha=1.0 - decay)
        if self._diag_grads and batch_size is None and self.layers:
            # No layer recorded (e.g. eval mode): there is no batch to attribute the gradients to.
            self._diag_grads = {}
        if self._diag_grads:
            if batch_size is None:
                raise RuntimeError("KFAC: the diagonal fallback needs the batch size; pass record_stats(batch_size=N)")
            for param in self.fallback_params:
                grad = self._diag_grads.get(id(param))
                if grad is None:
                    continue
                diag_batch = batch_size * grad.square()
                state = self.state[param]
                if "diag_fisher" not in state:
                    state["diag_fisher"] = diag_batch
                else:
                    state["diag_fisher"].mul_(decay).add_(diag_batch, alpha=1.0 - decay)
        self._clear_batch()

    def _clear_batch(self) -> None:
        self._captured = []
        self._diag_grads = {}
        for layer in self.layers:
            layer.discard()

    def update_inverses(self) -> None:
        """Recompute the damped inverses of every layer's factors now (normally every ``inverse_interval`` steps)."""
        group = self.param_groups[0]
        for layer in self.layers:
            layer.update_inverses(group["damping"], group["weight_decay"], self.damping_mode)

    def _fallback_precondition(
        self, param: th.Tensor, vector: th.Tensor, damping: float, out: th.Tensor | None = None
    ) -> th.Tensor:
        """``vector / (D + damping)`` with the diagonal Fisher ``D`` of a fallback parameter (a copy of
        ``vector`` with the ``"identity"`` fallback or before any statistics), written into ``out`` if given."""
        diag = self.state[param].get("diag_fisher") if self.fallback == "diagonal" else None
        if diag is None:
            return vector.clone() if out is None else out.copy_(vector)
        return th.div(vector, diag + damping, out=out) if out is not None else vector / (diag + damping)

    def _step_buffers(self, layers: Sequence[KroneckerFactoredLayer], fallback: Sequence[th.Tensor]) -> StepBuffers:
        """The flat buffers of a step over these layers and fallback parameters (rebuilt when they change)."""
        buffers = self._buffers
        if buffers is None or buffers.key != StepBuffers.key_of(layers, fallback):
            buffers = self._buffers = StepBuffers(layers, fallback)
        return buffers

    # ------------------------------------------------------------------ step
    def _non_finite_error(self, layers: Sequence[KroneckerFactoredLayer], fallback: Sequence[th.Tensor]) -> FloatingPointError:
        """Name the parameters with a non-finite gradient (only called once the step is known to be bad)."""
        bad = [
            f"{layer.name}.{pname}"
            for layer in layers
            for pname, p in layer.module.named_parameters()
            if p.grad is not None and not bool(th.isfinite(p.grad).all())
        ]
        bad += ["a fallback parameter" for p in fallback if p.grad is not None and not bool(th.isfinite(p.grad).all())]
        if bad:
            where = f"non-finite (NaN/Inf) gradient in {', '.join(bad)}"
        else:
            where = "non-finite preconditioned step (overflow, or non-finite Kronecker factors)"
        return FloatingPointError(f"KFAC.step(): {where}; parameters were left unchanged")

    def _fisher_norm(
        self, buffers: StepBuffers, layers: Sequence[KroneckerFactoredLayer], fallback: Sequence[th.Tensor]
    ) -> float:
        """``v = g^T dtheta = dtheta^T F_damped dtheta >= dtheta^T F_kfac dtheta``, the step's one host sync.

        Non-finite iff a gradient or a factor is, or the float32 sum overflowed (a collapsing policy's ``v`` can pass
        3e38 with finite terms): then summed again in float64, and if still non-finite a ``FloatingPointError``.
        """
        fisher_norm = float(th.dot(buffers.grad, buffers.delta))
        if not math.isfinite(fisher_norm):
            fisher_norm = float(th.dot(buffers.grad.double(), buffers.delta.double()))
            if not math.isfinite(fisher_norm):
                raise self._non_finite_error(layers, fallback)
        return fisher_norm

    @th.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Apply one trust-region K-FAC step (see the module docstring for what is computed).

        One host sync per step: the Fisher norm ``v``, which is non-finite iff a gradient (or a factor) is.

        :raises FloatingPointError: a gradient or a Kronecker factor contains NaN/Inf (parameters are left
            untouched).
        :raises RuntimeError: a layer with a gradient has no recorded statistics yet.
        """
        loss = None
        if closure is not None:
            with th.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        lr, kl_clip, damping = group["lr"], group["kl_clip"], group["damping"]
        weight_decay, momentum = group["weight_decay"], group["momentum"]

        layers = [layer for layer in self.layers if any(p.grad is not None for p in layer.params)]
        fallback = [p for p in self.fallback_params if p.grad is not None]
        if not layers and not fallback:
            return loss
        for layer in layers:
            if not layer.ready:
                raise RuntimeError(
                    f"KFAC.step(): layer '{layer.name}' has a gradient but no recorded statistics; run the "
                    "forward pass and fisher_backward() inside `with optimizer.record_stats():` first"
                )

        refresh = self.steps % self.inverse_interval == 0
        key = (damping, weight_decay, self.damping_mode)
        for layer in layers:
            if refresh or layer.inverse_key != key:
                layer.update_inverses(damping, weight_decay, self.damping_mode)

        buffers = self._step_buffers(layers, fallback)
        for layer, grad, delta in zip(layers, buffers.layer_grads, buffers.layer_deltas, strict=True):
            layer.write_grad_matrix(grad, weight_decay)  # [out, in + 1]
            layer.precondition(grad, out=delta)  # [out, in + 1]
        for fb_param, grad, delta in zip(fallback, buffers.fallback_grads, buffers.fallback_deltas, strict=True):
            assert fb_param.grad is not None
            if weight_decay != 0.0:
                th.add(fb_param.grad, fb_param, alpha=weight_decay, out=grad)
            else:
                grad.copy_(fb_param.grad)
            self._fallback_precondition(fb_param, grad, damping + weight_decay, out=delta)
        params, deltas = buffers.params, buffers.param_deltas

        fisher_norm = self._fisher_norm(buffers, layers, fallback)
        if kl_clip is None or fisher_norm <= 0.0:
            step_size = float(lr)
        else:
            step_size = min(float(lr), math.sqrt(2.0 * kl_clip / fisher_norm))  # eta = min(lr, sqrt(2 delta / v))
        if momentum > 0.0:
            momentum_buffers = []
            for param in params:
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = th.zeros_like(param)
                momentum_buffers.append(state["momentum_buffer"])
            # buf = m buf + (1 - m) eta dtheta
            th._foreach_mul_(momentum_buffers, momentum)
            th._foreach_add_(momentum_buffers, deltas, alpha=(1.0 - momentum) * step_size)
            th._foreach_sub_(params, momentum_buffers)
        else:
            th._foreach_add_(params, deltas, alpha=-step_size)

        self.steps += 1
        self.last_step_info = {
            "step_size": step_size,
            "kl": 0.5 * step_size**2 * fisher_norm,
            "fisher_norm": fisher_norm,
            "damping": damping,
        }
        return loss

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["kfac"] = {
            "steps": self.steps,
            "stats_interval": self.stats_interval,
            "inverse_interval": self.inverse_interval,
            "fallback": self.fallback,
            "damping_mode": self.damping_mode,
            "layers": {layer.name: layer.state_dict() for layer in self.layers},
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        kfac_state = state_dict.pop("kfac", None)
        if kfac_state is None:
            raise ValueError("KFAC.load_state_dict: not a KFAC state dict (no 'kfac' entry)")
        names = {layer.name for layer in self.layers}
        saved = set(kfac_state["layers"])
        if names != saved:
            raise ValueError(
                f"KFAC.load_state_dict: layer names differ; missing {sorted(names - saved)}, "
                f"unexpected {sorted(saved - names)}"
            )
        super().load_state_dict(state_dict)
        for layer in self.layers:
            layer.load_state_dict(kfac_state["layers"][layer.name])
        self.steps = int(kfac_state["steps"])
        self.stats_interval = int(kfac_state["stats_interval"])
        self.inverse_interval = int(kfac_state["inverse_interval"])
        self.fallback = str(kfac_state["fallback"])  # states of earlier versions may hold more keys, unused
        self.damping_mode = str(kfac_state.get("damping_mode", "factored"))  # earlier versions: factored only
        self._clear_batch()


def fisher_backward(fisher_loss: th.Tensor, optimizers: Sequence[KFAC], retain_graph: bool = True) -> None:
    """One backward pass of a sampled Fisher loss that records statistics for several K-FAC optimizers.

    Gradients are requested only for the captured layer outputs (and diagonal-fallback parameters), so
    weight gradients are not computed and no ``.grad`` is written; they are returned by ``torch.autograd.grad``
    and handed to each optimizer's :meth:`KFAC.accumulate` (no tensor hooks).

    :param fisher_loss: scalar, a mean over the batch of ``-log p(y_sampled | x)``.
    :param optimizers: optimizers whose :meth:`KFAC.record_stats` context is active.
    """
    recording = [(opt, opt.fisher_inputs()) for opt in optimizers if opt._recording]
    inputs = [t for _, opt_inputs in recording for t in opt_inputs]
    if not inputs:
        return
    grads = th.autograd.grad(fisher_loss, inputs, retain_graph=retain_graph, allow_unused=True)
    start = 0
    for opt, opt_inputs in recording:
        opt.accumulate(grads[start : start + len(opt_inputs)])
        start += len(opt_inputs)
