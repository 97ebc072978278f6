"""A small CNN on the digits data set (1,797 8x8 handwritten digits, shipped with fastnn).

    Conv2d(1, 32, 3, padding=1) -> ReLU -> MaxPool2d(2)      (32, 4, 4)
    Conv2d(32, 32, 3, padding=1) -> ReLU -> MaxPool2d(2)     (32, 2, 2)
    Flatten -> Linear(128, 64) -> ReLU -> Linear(64, 10)
Cross-entropy, Adam (lr 3e-3, divided by 10 for the last third of the epochs), mini-batches
of 32, a stratified 75/25 train/test split: about 98-99% test accuracy (seeds 0-5 gave
98.0-99.1%; with a constant learning rate the last epochs' noise costs about 1%).

Run: python examples/digits_cnn.py
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
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def train(epochs=30, batch_size=32, lr=3e-3, seed=1, show=False):
    """Returns (test accuracy, microseconds per training step, model)."""
    fastnn.manual_seed(seed)
    digits = load_digits()
    images = digits.images[:, None] / 16.0  # (N, 1, 8, 8); pixel values are 0..16
    X_train, X_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.25,
                                                        stratify=digits.target, seed=seed)
    model = build()
    loss_fn = nn.CrossEntropyLoss()
    opt = Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(X_train, y_train), batch_size=batch_size, shuffle=True)
    timer = Timer()
    for epoch in progress(range(epochs), "digits CNN", enabled=show):
        if epoch == 2 * epochs // 3:
            for group in opt.param_groups:
                group["lr"] = lr / 10
        model.train()
        for xb, yb in loader:
            with timer:
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
    model.eval()
    with fastnn.no_grad():
        acc = (model(X_test).argmax(1) == y_test).float().mean().item()
    return acc, timer.per_step_us, model


def main(show=True):
    acc, us, _ = train(show=show)
    print(f"digits CNN (conv32-pool-conv32-pool-64-10): test accuracy {acc:.1%}, "
          f"{us:.0f} us per training step")
    return acc


if __name__ == "__main__":
    main()
