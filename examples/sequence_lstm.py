"""Next-value prediction on a noisy sine wave with nn.LSTM + nn.Linear.

The series is x_t = sin(2*pi*t/period) + noise. From a window of 30 past values the model
predicts the next clean value. Training windows come from the first 80% of the series, the
test windows from the rest; the report compares the test MSE with two baselines: repeating
the last observed value, and the noise floor (the noise variance, which no model can beat
on noisy targets; here the targets are clean, so a good model goes below it).

Run: python examples/sequence_lstm.py
"""
import math
import time

import numpy as np

import fastnn
import fastnn.nn as nn
from fastnn.optim import Adam

try:
    from ._common import progress
except ImportError:  # run as a script
    from _common import progress


class SineLSTM(nn.Module):
    def __init__(self, hidden=32, layers=1):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):  # x (N, T, 1)
        out, (h, _) = self.lstm(x)
        return self.head(h[-1])  # the last layer's final state -> (N, 1)


def make_data(n=2000, period=50.0, noise=0.1, window=30, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    clean = np.sin(2 * math.pi * t / period)
    noisy = clean + noise * rng.standard_normal(n)
    idx = np.arange(window, n)
    xs = np.stack([noisy[i - window:i] for i in idx]).astype(np.float32)[:, :, None]
    ys = clean[idx].astype(np.float32)[:, None]
    split = int(0.8 * len(idx))
    return (xs[:split], ys[:split]), (xs[split:], ys[split:])


def main(epochs=8, batch=64, hidden=32, seed=0, show=True):
    fastnn.manual_seed(seed)
    (xtr, ytr), (xte, yte) = make_data(seed=seed)
    model = SineLSTM(hidden)
    opt = Adam(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    steps = 0
    for _ in progress(range(epochs), "sine LSTM", enabled=show):
        order = rng.permutation(len(xtr))
        for s in range(0, len(order), batch):
            b = order[s:s + batch]
            opt.zero_grad()
            loss = loss_fn(model(fastnn.tensor(xtr[b])), fastnn.tensor(ytr[b]))
            loss.backward()
            opt.step()
            steps += 1
    dt = time.perf_counter() - t0
    with fastnn.no_grad():
        mse = loss_fn(model(fastnn.tensor(xte)), fastnn.tensor(yte)).item()
    last = float(np.mean((xte[:, -1, 0] - yte[:, 0]) ** 2))
    print(f"noisy sine, LSTM(1, {hidden}) + Linear: test MSE {mse:.4f} after {epochs} epochs "
          f"({steps} steps, {1e3 * dt / max(steps, 1):.1f} ms/step); repeating the last value: "
          f"{last:.4f}; noise variance 0.0100")
    return mse, last


if __name__ == "__main__":
    main()
