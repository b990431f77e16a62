"""Preallocated buffers of a K-FAC step: every gradient and every preconditioned direction in one flat tensor.

With the gradient matrices ``[out, in + 1]`` of all layers (and the fallback parameters' gradients) laid out
back to back in one flat tensor ``g``, and the preconditioned directions likewise in ``dtheta``, the Fisher norm
``v = sum_l <g_l, dtheta_l>`` of :class:`~sb3_natgrad.optim.KFAC`'s trust region is one dot product, and the
per-parameter pieces of ``dtheta`` are fixed views. For the small networks and batches of on-policy RL a
step is dominated by the number of tensor operations, not their size; this keeps it to three per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch as th

from sb3_natgrad.optim.kfac_layers import KroneckerFactoredLayer


class StepBuffers:
    """Flat gradient and direction buffers for a fixed list of K-FAC layers and fallback parameters.

    :param layers: the layers taking part in the step, in order.
    :param fallback: the parameters without Kronecker factors, in order.
    """

    def __init__(self, layers: Sequence[KroneckerFactoredLayer], fallback: Sequence[th.Tensor]) -> None:
        reference = layers[0].params[0] if layers else fallback[0]
        sizes = [layer.n_out * layer.n_cols for layer in layers] + [param.numel() for param in fallback]
        self.key = self.key_of(layers, fallback)
        self.grad = th.zeros(sum(sizes), dtype=reference.dtype, device=reference.device)  # g, [P]
        self.delta = th.zeros_like(self.grad)  # dtheta, [P]
        grad_chunks = self.grad.split(sizes)
        delta_chunks = self.delta.split(sizes)
        n_layers = len(layers)
        # [out, in (+ 1)] views per layer, then flat views per fallback parameter
        self.layer_grads = [chunk.view(layer.n_out, layer.n_cols) for chunk, layer in zip(grad_chunks, layers, strict=False)]
        self.layer_deltas = [chunk.view(layer.n_out, layer.n_cols) for chunk, layer in zip(delta_chunks, layers, strict=False)]
        self.fallback_grads = [chunk.view_as(p) for chunk, p in zip(grad_chunks[n_layers:], fallback, strict=True)]
        self.fallback_deltas = [chunk.view_as(p) for chunk, p in zip(delta_chunks[n_layers:], fallback, strict=True)]
        # dtheta per parameter (views, in the order of ``params``)
        self.params: list[th.Tensor] = []
        self.param_deltas: list[th.Tensor] = []
        for layer, delta in zip(layers, self.layer_deltas, strict=True):
            self.params.extend(layer.params)
            self.param_deltas.extend(layer.split(delta))
        self.params.extend(fallback)
        self.param_deltas.extend(self.fallback_deltas)

    @staticmethod
    def key_of(layers: Sequence[KroneckerFactoredLayer], fallback: Sequence[th.Tensor]) -> tuple:
        """What the buffers depend on: the layers and parameters (by identity), their dtype and device."""
        reference = layers[0].params[0] if layers else fallback[0]
        return (tuple(map(id, layers)), tuple(map(id, fallback)), reference.dtype, reference.device)
