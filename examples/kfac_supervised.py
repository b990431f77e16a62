"""K-FAC vs SGD on a small supervised problem (Martens & Grosse 2015).

A tanh MLP classifier learns labels produced by a fixed random "teacher" MLP on Gaussian inputs. K-FAC
preconditions with the true Fisher: its statistics come from labels *sampled from the model's own
predictive distribution*, backpropagated inside ``record_stats``; the training loss uses the real labels.

Run: ``python examples/kfac_supervised.py`` (about 10 s on one CPU core).
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_natgrad.optim import KFAC

N_FEATURES, N_CLASSES, N_TRAIN, N_TEST = 20, 5, 4096, 1024
BATCH_SIZE, N_STEPS = 128, 300


def make_data(seed: int = 0) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    gen = th.Generator().manual_seed(seed)
    teacher_w1 = th.randn(N_FEATURES, 32, generator=gen)
    teacher_w2 = th.randn(32, N_CLASSES, generator=gen)
    x = th.randn(N_TRAIN + N_TEST, N_FEATURES, generator=gen)
    y = (th.tanh(x @ teacher_w1 / N_FEATURES**0.5) @ teacher_w2).argmax(dim=1)  # [N]
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def make_model(seed: int = 1) -> nn.Module:
    th.manual_seed(seed)
    return nn.Sequential(nn.Linear(N_FEATURES, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, N_CLASSES))


def train(name: str, model: nn.Module, optimizer: th.optim.Optimizer, data: tuple[th.Tensor, ...]) -> None:
    x_train, y_train, x_test, y_test = data
    gen = th.Generator().manual_seed(2)
    for step in range(N_STEPS + 1):
        idx = th.randint(0, N_TRAIN, (BATCH_SIZE,), generator=gen)
        x, y = x_train[idx], y_train[idx]
        if isinstance(optimizer, KFAC):
            with optimizer.record_stats() as recording:
                logits = model(x)  # [B, n_classes]
                if recording:
                    # labels sampled from the model: the true Fisher, not the empirical one
                    sampled = th.multinomial(F.softmax(logits.detach(), dim=1), 1, generator=gen).squeeze(1)
                    optimizer.fisher_backward(F.cross_entropy(logits, sampled))
        else:
            logits = model(x)
        loss = F.cross_entropy(logits, y)
        if step % 50 == 0:
            with th.no_grad():
                test_logits = model(x_test)
                test_loss = F.cross_entropy(test_logits, y_test).item()
                accuracy = (test_logits.argmax(1) == y_test).float().mean().item()
            print(
                f"{name:5s} step {step:4d}  train loss {loss.item():.4f}  test loss {test_loss:.4f}  test acc {accuracy:.3f}"
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    data = make_data()
    model = make_model()
    train("sgd", model, th.optim.SGD(model.parameters(), lr=0.3, momentum=0.9), data)
    model = make_model()
    kfac = KFAC(model, lr=0.3, kl_clip=0.01, damping=1e-2, momentum=0.9, stat_decay=0.95, inverse_interval=10)
    train("kfac", model, kfac, data)


if __name__ == "__main__":
    main()
