"""K-FAC optimizer checked against brute-force computations.

References: Martens & Grosse (2015) for dense layers and factored damping, Grosse & Martens (2016) for
convolutions, Wu et al. (2017) for the trust region. Every expected value below is computed
independently of ``sb3_natgrad.optim``: explicit per-sample loops with their own forward passes,
explicit patch extraction by slicing, dense Kronecker products and ``torch.linalg.solve``.

Vectorisation convention: parameters are flattened row-major (``W.flatten()`` of ``[out, in + 1]``), for
which the K-FAC block is ``kron(G, A)`` (the papers' ``A (x) G`` is for column-major vec).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_natgrad.optim import KFAC
from sb3_natgrad.optim.kfac_layers import damped_inverse

N_CLASSES = 4


class DenseNet(nn.Module):
    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 5, bias=bias)
        self.fc2 = nn.Linear(5, N_CLASSES, bias=bias)
        self.offset = nn.Parameter(th.zeros(N_CLASSES))  # no Kronecker factors: fallback

    def forward(self, x: th.Tensor) -> th.Tensor:
        return self.fc2(th.tanh(self.fc1(x))) + self.offset


class ConvNet(nn.Module):
    def __init__(self, stride: int, padding: int, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, kernel_size=3, stride=stride, padding=padding, bias=bias)
        out = (6 + 2 * padding - 3) // stride + 1
        self.fc = nn.Linear(3 * out * out, N_CLASSES)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return self.fc(th.relu(self.conv(x)).flatten(1))


def sampled_targets(logits: th.Tensor, seed: int = 1) -> th.Tensor:
    gen = th.Generator().manual_seed(seed)
    return th.multinomial(F.softmax(logits.detach(), dim=-1), 1, generator=gen).squeeze(1)


def record(opt: KFAC, model: nn.Module, x: th.Tensor) -> th.Tensor:
    """Forward + sampled Fisher backward inside the recording context; returns the sampled targets."""
    with opt.record_stats(force=True):
        logits = model(x)
        targets = sampled_targets(logits)
        opt.fisher_backward(F.cross_entropy(logits, targets))
    return targets


def with_ones(rows: th.Tensor, bias: bool) -> th.Tensor:
    return th.cat([rows, th.ones(rows.shape[0], 1)], dim=1) if bias else rows


def layers_by_name(opt: KFAC) -> dict:
    return {layer.name: layer for layer in opt.layers}


# ---------------------------------------------------------------------------------------- factors
@pytest.mark.parametrize("bias", [True, False])
def test_linear_factors_match_per_sample_brute_force(bias: bool) -> None:
    th.manual_seed(0)
    model = DenseNet(bias)
    x = th.randn(7, 3)
    opt = KFAC(model, lr=0.1)
    targets = record(opt, model, x)

    a1 = th.zeros(4, 4) if bias else th.zeros(3, 3)
    a2 = th.zeros(6, 6) if bias else th.zeros(5, 5)
    g1, g2 = th.zeros(5, 5), th.zeros(N_CLASSES, N_CLASSES)
    w1, w2 = model.fc1.weight.detach(), model.fc2.weight.detach()
    b1 = model.fc1.bias.detach() if bias else th.zeros(5)
    b2 = model.fc2.bias.detach() if bias else th.zeros(N_CLASSES)
    for n in range(x.shape[0]):  # one independent forward / backward per sample
        s1 = (w1 @ x[n] + b1).requires_grad_()
        h = th.tanh(s1)
        s2 = (w2 @ h.detach() + b2).requires_grad_()
        nll = -F.log_softmax(s2 + model.offset.detach(), dim=0)[targets[n]]
        (g_s2,) = th.autograd.grad(nll, s2)
        g_s1 = (w2.T @ g_s2) * (1 - h.detach() ** 2)
        a_in1 = with_ones(x[n : n + 1], bias)[0]
        a_in2 = with_ones(h.detach()[None], bias)[0]
        a1 += th.outer(a_in1, a_in1) / x.shape[0]
        a2 += th.outer(a_in2, a_in2) / x.shape[0]
        g1 += th.outer(g_s1, g_s1) / x.shape[0]
        g2 += th.outer(g_s2, g_s2) / x.shape[0]

    layers = layers_by_name(opt)
    th.testing.assert_close(layers["fc1"].a_factor, a1)
    th.testing.assert_close(layers["fc2"].a_factor, a2)
    th.testing.assert_close(layers["fc1"].g_factor, g1)
    th.testing.assert_close(layers["fc2"].g_factor, g2)


def brute_patches(x: th.Tensor, kernel: int, stride: int, padding: int) -> th.Tensor:
    """Input patches by slicing: ``[T, C * k * k]`` in (C, kh, kw) order, row-major over output locations."""
    padded = F.pad(x, (padding, padding, padding, padding))
    size = (padded.shape[-1] - kernel) // stride + 1
    rows = []
    for i in range(size):
        for j in range(size):
            rows.append(padded[:, i * stride : i * stride + kernel, j * stride : j * stride + kernel].reshape(-1))
    return th.stack(rows)


@pytest.mark.parametrize(("stride", "padding", "bias"), [(1, 0, False), (2, 1, True), (1, 1, True)])
def test_conv_factors_match_kfc_brute_force(stride: int, padding: int, bias: bool) -> None:
    """KFC (Grosse & Martens 2016): Omega = E[sum_t a_t a_t^T], Gamma = E[(1/|T|) sum_t g_t g_t^T]."""
    th.manual_seed(0)
    model = ConvNet(stride, padding, bias)
    x = th.randn(5, 2, 6, 6)
    opt = KFAC(model, lr=0.1)
    targets = record(opt, model, x)

    conv = model.conv
    omega, gamma = None, None
    for n in range(x.shape[0]):
        s = conv(x[n : n + 1]).detach().requires_grad_()  # [1, 3, H', W']
        nll = F.cross_entropy(model.fc(th.relu(s).flatten(1)), targets[n : n + 1])
        (g_s,) = th.autograd.grad(nll, s)
        g_rows = g_s[0].reshape(3, -1).T  # [T, out], row-major over locations
        a_rows = with_ones(brute_patches(x[n], 3, stride, padding), bias)  # [T, C k k (+1)]
        n_loc = a_rows.shape[0]
        omega_n = sum(th.outer(a, a) for a in a_rows)
        gamma_n = sum(th.outer(g, g) for g in g_rows) / n_loc
        omega = omega_n if omega is None else omega + omega_n
        gamma = gamma_n if gamma is None else gamma + gamma_n
    layers = layers_by_name(opt)
    th.testing.assert_close(layers["conv"].a_factor, omega / x.shape[0], rtol=1e-5, atol=1e-6)
    th.testing.assert_close(layers["conv"].g_factor, gamma / x.shape[0], rtol=1e-5, atol=1e-6)


def test_running_average_uses_stat_decay() -> None:
    th.manual_seed(0)
    model = DenseNet()
    x1, x2 = th.randn(6, 3), th.randn(6, 3)
    opt = KFAC(model, lr=0.1, stat_decay=0.75)
    record(opt, model, x1)
    first = layers_by_name(opt)["fc1"].a_factor.clone()
    record(opt, model, x2)
    a2 = with_ones(x2, True)
    expected = 0.75 * first + 0.25 * a2.T @ a2 / 6
    th.testing.assert_close(layers_by_name(opt)["fc1"].a_factor, expected)


def test_running_averages_match_explicit_sums() -> None:
    """Batch 1 initialises the factors and the diagonal Fisher, then each is ``decay * old + (1 - decay) * batch``."""
    th.manual_seed(0)
    model = DenseNet()
    decay, n_batches = 0.8, 7
    opt = KFAC(model, lr=0.1, stat_decay=decay)
    a_batches, d_batches = [], []
    for _ in range(n_batches):
        x = th.randn(6, 3)
        targets = record(opt, model, x)
        a = with_ones(x, True)
        a_batches.append(a.T @ a / 6)
        with th.no_grad():  # gradient of the mean Fisher loss w.r.t. the offset (the logits' bias), explicitly
            grad = (F.softmax(model(x), dim=-1) - F.one_hot(targets, N_CLASSES)).mean(0)
        d_batches.append(6 * grad.square())
    weights = [decay**6] + [(1 - decay) * decay ** (n_batches - 1 - k) for k in range(1, n_batches)]
    assert math.isclose(sum(weights), 1.0)
    expected_a = sum(w * b for w, b in zip(weights, a_batches, strict=True))
    expected_d = sum(w * b for w, b in zip(weights, d_batches, strict=True))
    th.testing.assert_close(layers_by_name(opt)["fc1"].a_factor, expected_a)
    th.testing.assert_close(opt.state[model.offset]["diag_fisher"], expected_d)


# ---------------------------------------------------------------------------------------- step
def loss_gradients(model: nn.Module, x: th.Tensor, y: th.Tensor) -> None:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()


def dense_damped_kfac(a: th.Tensor, g: th.Tensor, damping: float, mode: str = "factored") -> th.Tensor:
    """The damped K-FAC block as an explicit float64 matrix (row-major vec): ``kron(G + d_G I, A + d_A I)`` with pi
    from the traces (M&G 2015 §6.3), or ``kron(G, A) + damping I`` (``mode="eigen"``, baselines' ACKTR)."""
    a, g = a.double(), g.double()
    if mode == "eigen":
        return th.kron(g, a) + damping * th.eye(g.shape[0] * a.shape[0], dtype=th.float64)
    pi = math.sqrt((th.trace(a).item() / a.shape[0]) / (th.trace(g).item() / g.shape[0]))
    d_a, d_g = pi * math.sqrt(damping), math.sqrt(damping) / pi
    return th.kron(g + d_g * th.eye(g.shape[0]), a + d_a * th.eye(a.shape[0]))


def dense_damped_solve(a: th.Tensor, g: th.Tensor, grad: th.Tensor, damping: float, mode: str = "factored") -> th.Tensor:
    """The damped K-FAC block's inverse applied to ``V`` by a dense Kronecker solve."""
    big = dense_damped_kfac(a, g, damping, mode)
    return th.linalg.solve(big, grad.double().flatten()).reshape(grad.shape).float()


def layer_grad(module: nn.Module) -> th.Tensor:
    grad = module.weight.grad.reshape(module.weight.shape[0], -1)
    if module.bias is not None:
        grad = th.cat([grad, module.bias.grad[:, None]], dim=1)
    return grad


def layer_delta(module: nn.Module, before: dict[str, th.Tensor], prefix: str) -> th.Tensor:
    delta = (before[f"{prefix}.weight"] - module.weight.detach()).reshape(module.weight.shape[0], -1)
    if module.bias is not None:
        delta = th.cat([delta, (before[f"{prefix}.bias"] - module.bias.detach())[:, None]], dim=1)
    return delta


@pytest.mark.parametrize("mode", ["factored", "eigen"])
def test_kfac_preconditioner_is_the_damped_kfac_inverse(mode: str) -> None:
    """Each layer's step is the damped K-FAC block's inverse applied to its gradient, against an explicit
    ``torch.kron`` matrix and ``torch.linalg.solve`` (fails with the identity as preconditioner)."""
    th.manual_seed(0)
    model = ConvNet(stride=2, padding=1, bias=True)
    x, y = th.randn(8, 2, 6, 6), th.randint(0, N_CLASSES, (8,))
    damping = 0.03
    opt = KFAC(model, lr=1.0, kl_clip=None, momentum=0.0, damping=damping, damping_mode=mode, inverse_interval=3)
    record(opt, model, x)
    record(opt, model, x[:5])  # running average of two batches
    loss_gradients(model, x, y)
    layers = layers_by_name(opt)
    grads = {name: layer_grad(getattr(model, name)) for name in ("conv", "fc")}
    expected = {
        name: dense_damped_solve(layers[name].a_factor, layers[name].g_factor, grads[name], damping, mode)
        for name in ("conv", "fc")
    }
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt.step()
    for name in ("conv", "fc"):
        got = layer_delta(getattr(model, name), before, name)
        # the step is not the gradient itself: the check can tell the preconditioner from the identity
        assert (expected[name] - grads[name]).abs().max() > 100 * (1e-4 * expected[name].abs().max() + 1e-6)
        # float32 eigenbases (eigen) / Cholesky (factored) against a float64 dense solve
        th.testing.assert_close(got, expected[name], rtol=1e-4, atol=1e-5 * float(expected[name].abs().max()))


def test_step_follows_the_layers_that_have_gradients() -> None:
    """The step's flat buffers follow the set of layers with a gradient: only fc, then conv and fc (no bias)."""
    th.manual_seed(0)
    model = ConvNet(stride=1, padding=0, bias=False)
    x, y = th.randn(8, 2, 6, 6), th.randint(0, N_CLASSES, (8,))
    damping = 0.03
    opt = KFAC(model, lr=1.0, kl_clip=None, momentum=0.0, damping=damping)
    record(opt, model, x)
    layers = layers_by_name(opt)
    for names in (("fc",), ("conv", "fc")):
        loss_gradients(model, x, y)
        if names == ("fc",):
            model.conv.weight.grad = None
        grads = {name: layer_grad(getattr(model, name)) for name in names}
        expected = {n: dense_damped_solve(layers[n].a_factor, layers[n].g_factor, grads[n], damping) for n in names}
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        opt.step()
        if names == ("fc",):
            assert th.equal(model.conv.weight, before["conv.weight"])
        for name in names:
            got = layer_delta(getattr(model, name), before, name)
            th.testing.assert_close(got, expected[name], rtol=1e-4, atol=1e-6)


def test_plain_backward_in_the_context_records_nothing() -> None:
    """Statistics come from fisher_backward only; an ordinary backward inside the context leaves them alone."""
    th.manual_seed(0)
    model = DenseNet()
    x = th.randn(6, 3)
    opt = KFAC(model, lr=0.1)
    with opt.record_stats(force=True):
        logits = model(x)
        F.cross_entropy(logits, sampled_targets(logits)).backward()
    assert all(layer.a_factor is None for layer in opt.layers)


def test_diagonal_fallback_matches_per_sample_definition() -> None:
    th.manual_seed(0)
    model = DenseNet()
    x, y = th.randn(6, 3), th.randint(0, N_CLASSES, (6,))
    opt = KFAC(model, lr=1.0, kl_clip=None, momentum=0.0, damping=0.05)
    targets = record(opt, model, x)
    # per-sample Fisher-loss gradients of the offset, averaged: D = N * (mean_n g_n)^2
    per_sample = []
    for n in range(6):
        nll = F.cross_entropy(model(x[n : n + 1]), targets[n : n + 1])
        per_sample.append(th.autograd.grad(nll, model.offset)[0])
    mean_grad = th.stack(per_sample).mean(0)
    diag = 6 * mean_grad**2
    loss_gradients(model, x, y)
    expected = model.offset.grad / (diag + 0.05)
    before = model.offset.detach().clone()
    opt.step()
    th.testing.assert_close(before - model.offset.detach(), expected)


def dense_kfac_fisher(opt: KFAC, model: nn.Module, damping: float | None, mode: str = "factored") -> th.Tensor:
    """Block-diagonal K-FAC Fisher over [fc1 (row-major), fc2, offset]; damped if ``damping`` is given."""
    layers = layers_by_name(opt)
    blocks = []
    for name in ("fc1", "fc2"):
        a, g = layers[name].a_factor.double(), layers[name].g_factor.double()
        blocks.append(th.kron(g, a) if damping is None else dense_damped_kfac(a, g, damping, mode))
    diag = opt.state[model.offset]["diag_fisher"].double()
    blocks.append(th.diag(diag + (damping or 0.0)))
    return th.block_diag(*blocks)


def flat_step(model: DenseNet, before: dict[str, th.Tensor]) -> th.Tensor:
    parts = [layer_delta(model.fc1, before, "fc1").flatten(), layer_delta(model.fc2, before, "fc2").flatten()]
    parts.append(before["offset"] - model.offset.detach())
    return th.cat(parts).double()


@pytest.mark.parametrize(("kl_clip", "mode"), [(1e-4, "factored"), (1e-3, "factored"), (1e-2, "factored"), (1e-3, "eigen")])
def test_trust_region_bounds_kl_of_step(kl_clip: float, mode: str) -> None:
    th.manual_seed(0)
    model = DenseNet()
    x, y = th.randn(10, 3), th.randint(0, N_CLASSES, (10,))
    damping = 0.01
    opt = KFAC(model, lr=1.0, kl_clip=kl_clip, momentum=0.0, damping=damping, damping_mode=mode)
    record(opt, model, x)
    loss_gradients(model, x, y)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt.step()
    step = flat_step(model, before)
    kl_kfac = 0.5 * step @ dense_kfac_fisher(opt, model, None) @ step
    kl_damped = 0.5 * step @ dense_kfac_fisher(opt, model, damping, mode) @ step
    assert kl_kfac <= kl_clip * (1 + 1e-5)
    eta = opt.last_step_info["step_size"]
    if eta < 1.0:  # the trust region was active: the damped quadratic model is exactly at the bound
        assert kl_damped.item() == pytest.approx(kl_clip, rel=1e-4)
    else:
        assert kl_damped.item() <= kl_clip
    assert opt.last_step_info["kl"] == pytest.approx(kl_damped.item(), rel=1e-4)


def test_trust_region_inactive_gives_lr_step() -> None:
    th.manual_seed(0)
    model = DenseNet()
    x, y = th.randn(10, 3), th.randint(0, N_CLASSES, (10,))
    opt = KFAC(model, lr=1e-3, kl_clip=10.0, momentum=0.0)
    record(opt, model, x)
    loss_gradients(model, x, y)
    opt.step()
    assert opt.last_step_info["step_size"] == pytest.approx(1e-3)


def clone_model_and_opt(model: nn.Module, **kwargs) -> tuple[nn.Module, KFAC]:
    copy = type(model)()
    copy.load_state_dict(model.state_dict())
    return copy, KFAC(copy, **kwargs)


def train_steps(model: nn.Module, opt: KFAC, batches: list[tuple[th.Tensor, th.Tensor]]) -> None:
    for x, y in batches:
        with opt.record_stats() as recording:
            logits = model(x)
            if recording:
                opt.fisher_backward(F.cross_entropy(logits, sampled_targets(logits)))
        opt.zero_grad()
        F.cross_entropy(logits, y).backward()
        opt.step()


@pytest.mark.parametrize("mode", ["factored", "eigen"])
def test_state_dict_round_trip_gives_identical_steps(mode: str) -> None:
    th.manual_seed(0)
    kwargs = dict(lr=0.3, kl_clip=0.01, momentum=0.9, weight_decay=1e-3, stats_interval=2, inverse_interval=4)
    kwargs.update(damping_mode=mode)
    kwargs.update(stat_decay=0.75)
    batches = [(th.randn(8, 3), th.randint(0, N_CLASSES, (8,))) for _ in range(8)]
    model = DenseNet()
    opt = KFAC(model, **kwargs)
    train_steps(model, opt, batches[:3])  # 3 steps: the next one uses saved eigenvectors, not fresh ones

    buffer = io.BytesIO()
    th.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = th.load(buffer, weights_only=True)
    restored = DenseNet()
    restored.load_state_dict(saved["model"])
    restored_opt = KFAC(restored, lr=1.0)  # hyperparameters come back from the state dict
    restored_opt.load_state_dict(saved["opt"])
    assert restored_opt.param_groups[0]["lr"] == 0.3 and restored_opt.inverse_interval == 4
    assert restored_opt.damping_mode == mode

    train_steps(model, opt, batches[3:])
    train_steps(restored, restored_opt, batches[3:])
    for (name, p), q in zip(model.named_parameters(), restored.parameters(), strict=True):
        assert th.equal(p, q), name


def test_load_state_dict_of_an_earlier_version_with_the_warmup_keys() -> None:
    """States saved while the ``stats_warmup`` option existed carry its flag and per-layer batch counts: unused."""
    th.manual_seed(0)
    model = DenseNet()
    opt = KFAC(model, lr=0.1)
    record(opt, model, th.randn(6, 3))
    state = opt.state_dict()
    state["kfac"]["stats_warmup"] = True
    for layer_state in state["kfac"]["layers"].values():
        layer_state["n_batches"] = 1
    restored = KFAC(model, lr=0.1)
    restored.load_state_dict(state)
    th.testing.assert_close(layers_by_name(restored)["fc1"].a_factor, layers_by_name(opt)["fc1"].a_factor)
    assert not hasattr(restored, "stats_warmup")


def test_load_state_dict_rejects_other_layers() -> None:
    opt = KFAC(DenseNet(), lr=0.1)
    other = KFAC(ConvNet(1, 0, True), lr=0.1)
    with pytest.raises(ValueError, match="layer names differ"):
        other.load_state_dict(opt.state_dict())


def test_schedule_writing_param_group_lr_changes_step() -> None:
    th.manual_seed(0)
    x, y = th.randn(6, 3), th.randint(0, N_CLASSES, (6,))
    model = DenseNet()
    deltas = []
    for lr in (0.5, 0.125):
        copy, opt = clone_model_and_opt(model, lr=1.0, kl_clip=None, momentum=0.0)
        opt.param_groups[0]["lr"] = lr  # what SB3's _update_learning_rate does
        record(opt, copy, x)
        loss_gradients(copy, x, y)
        before = copy.fc1.weight.detach().clone()
        opt.step()
        deltas.append(before - copy.fc1.weight.detach())
    th.testing.assert_close(deltas[0], 4 * deltas[1])


def _nan_gradient(model: nn.Module, opt: KFAC) -> None:
    model.fc2.weight.grad[0, 0] = float("nan")


def _inf_gradient(model: nn.Module, opt: KFAC) -> None:
    model.fc2.weight.grad[0, 0] = float("inf")


def _nan_factor(model: nn.Module, opt: KFAC) -> None:
    layers_by_name(opt)["fc1"].a_factor[0, 0] = float("nan")  # e.g. statistics of a diverged rollout


@pytest.mark.parametrize(
    "corrupt, message",
    [(_nan_gradient, r"fc2\.weight"), (_inf_gradient, r"fc2\.weight"), (_nan_factor, "layer 'fc1' is not finite")],
)
def test_non_finite_step_raises_and_leaves_params(corrupt: Callable[[nn.Module, KFAC], None], message: str) -> None:
    th.manual_seed(0)
    model = DenseNet()
    x, y = th.randn(6, 3), th.randint(0, N_CLASSES, (6,))
    opt = KFAC(model, lr=0.1)
    record(opt, model, x)
    loss_gradients(model, x, y)
    corrupt(model, opt)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=message):
        opt.step()
    for k, v in model.state_dict().items():
        assert th.equal(v, before[k]), k
    assert opt.steps == 0 and not any("momentum_buffer" in state for state in opt.state.values())


def test_fisher_norm_overflowing_float32_still_gives_a_trust_region_step() -> None:
    """Finite gradients whose Fisher norm v exceeds float32's range (~3e38): v is summed in float64 and the step
    still has the trust region's size, ``0.5 eta^2 v = kl_clip``, instead of raising."""
    th.manual_seed(0)
    model = DenseNet()
    x, y = th.randn(6, 3), th.randint(0, N_CLASSES, (6,))
    opt = KFAC(model, lr=1.0, kl_clip=0.001)
    record(opt, model, x)
    loss_gradients(model, x, y)
    for param in model.parameters():
        param.grad.mul_(1e20)  # v ~ 1e40 * |g|^2
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    info = opt.last_step_info
    assert info["fisher_norm"] > 3.5e38 and math.isfinite(info["fisher_norm"])
    assert info["kl"] == pytest.approx(0.001, rel=1e-6)
    assert all(bool(th.isfinite(p).all()) for p in model.parameters())
    assert any(not th.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_damped_inverse_matches_dense_inverse() -> None:
    th.manual_seed(0)
    root = th.randn(7, 5, dtype=th.float64)
    factor = root @ root.T / 5  # PSD, rank 5 < 7
    damping = th.tensor(0.03, dtype=th.float64)
    expected = th.linalg.inv(factor + damping * th.eye(7, dtype=th.float64))
    th.testing.assert_close(damped_inverse(factor, damping), expected)


def test_damped_inverse_falls_back_to_clamped_eigh_when_cholesky_fails() -> None:
    # Rounding left a slightly negative eigenvalue larger than the damping: Cholesky of S + d I fails, the
    # eigendecomposition path clamps the eigenvalue at 0 and returns 1 / d for that direction.
    factor = th.tensor([[1.0, 0.0], [0.0, -1e-3]])
    result = damped_inverse(factor, th.tensor(1e-4))
    th.testing.assert_close(result, th.diag(th.tensor([1.0 / (1.0 + 1e-4), 1e4])))


def test_hooks_inactive_outside_context_and_in_eval_mode() -> None:
    th.manual_seed(0)
    model = DenseNet()
    x, y = th.randn(6, 3), th.randint(0, N_CLASSES, (6,))
    opt = KFAC(model, lr=0.1)
    loss_gradients(model, x, y)  # ordinary backward, no context
    assert all(layer.a_factor is None for layer in opt.layers)
    model.eval()
    record(opt, model, x)  # context, but eval mode
    assert all(layer.a_factor is None for layer in opt.layers)
    with pytest.raises(RuntimeError, match="no recorded statistics"):
        opt.step()

    model.train()
    grads_before = model.fc1.weight.grad.clone()
    with opt.record_stats(force=True):
        logits = model(x)
        opt.fisher_backward(F.cross_entropy(logits, sampled_targets(logits)))
    assert th.equal(model.fc1.weight.grad, grads_before)  # the Fisher backward writes no .grad
    factors = [layer.g_factor.clone() for layer in opt.layers]
    F.cross_entropy(logits, y).backward()  # same graph, outside the context
    for layer, factor in zip(opt.layers, factors, strict=True):
        assert th.equal(layer.g_factor, factor)
    assert not th.equal(model.fc1.weight.grad, grads_before)


def test_forward_hooks_exist_only_while_recording() -> None:
    # outside a recording context the layers keep PyTorch's hook-free call path
    model = DenseNet()
    opt = KFAC(model, lr=0.1, stats_interval=2)
    layers = [layer.module for layer in opt.layers]
    assert not any(module._forward_hooks for module in layers)
    with opt.record_stats() as active:
        assert active and all(len(module._forward_hooks) == 1 for module in layers)
        logits = model(th.randn(4, 3))
        opt.fisher_backward(F.cross_entropy(logits, sampled_targets(logits)))
    assert not any(module._forward_hooks for module in layers)
    opt.steps = 1  # not due: nothing attached
    with opt.record_stats() as active:
        assert not active and not any(module._forward_hooks for module in layers)
    with pytest.raises(ValueError), opt.record_stats(force=True):
        raise ValueError
    assert not any(module._forward_hooks for module in layers)
    opt.remove_hooks()
    with opt.record_stats(force=True):
        assert not any(module._forward_hooks for module in layers)


def test_stats_interval_skips_recording() -> None:
    th.manual_seed(0)
    model = DenseNet()
    opt = KFAC(model, lr=0.1, stats_interval=3)
    assert opt.stats_due
    opt.steps = 1
    with opt.record_stats() as recording:
        logits = model(th.randn(4, 3))
        assert not recording
        opt.fisher_backward(F.cross_entropy(logits, sampled_targets(logits)))
    assert all(layer.a_factor is None for layer in opt.layers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lr", -1.0),
        ("kl_clip", 0.0),
        ("damping", 0.0),
        ("damping", float("nan")),
        ("weight_decay", -1e-3),
        ("momentum", 1.0),
        ("stat_decay", 1.5),
        ("stats_interval", 0),
        ("inverse_interval", 2.5),
        ("fallback", "adam"),
        ("damping_mode", "tikhonov"),
    ],
)
def test_invalid_arguments_raise(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^KFAC: {name} must be .*, got {re.escape(repr(value))}$"):
        KFAC(DenseNet(), **{name: value})
