"""An MLP on the digits data set (1,797 8x8 handwritten digits, shipped with fastnn).

64 -> 128 -> 64 -> 10 with ReLU, cross-entropy, Adam, mini-batches of 64.

Run: python examples/digits_mlp.py
"""
import fastnn
import fastnn.nn as nn
from fastnn.datasets import load_digits, train_test_split
from fastnn.optim import Adam
from fastnn.utils.data import DataLoader, TensorDataset

try:
    from ._common import Timer, progress
except ImportError:  # run as a script
    from _common import Timer, progress


def build():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def train(epochs=30, batch_size=64, lr=1e-3, seed=0, show=False):
    """Returns (test accuracy, microseconds per training step, model)."""
    fastnn.manual_seed(seed)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel values are 0..16
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, seed=seed)
    model = build()
    loss_fn = nn.CrossEntropyLoss()
    opt = Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(X_train, y_train), batch_size=batch_size, shuffle=True)
    timer = Timer()
    for _ in progress(range(epochs), "digits MLP", enabled=show):
        for xb, yb in loader:
            with timer:
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
    with fastnn.no_grad():
        acc = (model(X_test).argmax(1) == y_test).float().mean().item()
    return acc, timer.per_step_us, model


def main(show=True):
    acc, us, _ = train(show=show)
    print(f"digits MLP 64-128-64-10: test accuracy {acc:.1%}, {us:.0f} us per training step")
    return acc


if __name__ == "__main__":
    main()
