"""StatQuest's image-classification CNN: is a 6x6 picture an "O" or an "X"?

    Conv2d(1, 1, 3) -> ReLU -> MaxPool2d(2, 2) -> Flatten -> Linear(4, 1) -> ReLU -> Linear(1, 2)
Cross-entropy, Adam lr=1e-3, the two images as one batch, a few hundred epochs. Afterwards
the network separates the two images; then each image shifted one pixel (left, right, up,
down) tests how much translation the max pooling absorbs.

Run: python examples/statquest_cnn.py
"""
import numpy as np

import fastnn
import fastnn.nn as nn
from fastnn.optim import Adam

O = np.array([[0, 0, 1, 1, 0, 0],
              [0, 1, 0, 0, 1, 0],
              [1, 0, 0, 0, 0, 1],
              [1, 0, 0, 0, 0, 1],
              [0, 1, 0, 0, 1, 0],
              [0, 0, 1, 1, 0, 0]], np.float32)
X = np.array([[1, 0, 0, 0, 0, 1],
              [0, 1, 0, 0, 1, 0],
              [0, 0, 1, 1, 0, 0],
              [0, 0, 1, 1, 0, 0],
              [0, 1, 0, 0, 1, 0],
              [1, 0, 0, 0, 0, 1]], np.float32)
CLASSES = ("O", "X")


def build():
    return nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                         nn.Linear(4, 1), nn.ReLU(), nn.Linear(1, 2))


def shift(img, dy, dx):
    """The image moved by (dy, dx) pixels; what moves out is lost, what comes in is blank."""
    out = np.zeros_like(img)
    h, w = img.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def train(epochs=400, lr=1e-3, seed=4):
    """Returns (model, loss per epoch).

    NOTE: the single hidden unit after Linear(4, 1) -> ReLU dies for some initialisations
    (its input negative for both images: loss stuck at ln 2, about half of the seeds); seed 4
    is one that trains, as StatQuest's hand-picked start values do."""
    fastnn.manual_seed(seed)
    model = build()
    x = fastnn.tensor(np.stack([O, X])[:, None])  # (2, 1, 6, 6)
    y = fastnn.tensor(np.array([0, 1]))
    loss_fn = nn.CrossEntropyLoss()
    opt = Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


def classify(model, images):
    """Predicted class index and the softmax probability of "X" for each (6, 6) image."""
    with fastnn.no_grad():
        logits = model(fastnn.tensor(np.stack(images)[:, None]))
        p = fastnn.nn.functional.softmax(logits, dim=1).numpy()
    return p.argmax(1), p[:, 1]


SHIFTS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def main():
    model, losses = train()
    pred, px = classify(model, [O, X])
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} after {len(losses)} epochs")
    for name, c, p in zip(CLASSES, pred, px):
        print(f"  image {name}: predicted {CLASSES[c]} (P(X) = {p:.3f})")
    kernel = model[0].weight.detach().numpy()[0, 0]
    print("  learned 3x3 filter:\n" + "\n".join("    " + " ".join(f"{v:6.2f}" for v in r)
                                                 for r in kernel))
    correct = 0
    for name, img in zip(CLASSES, (O, X)):
        shifted = [shift(img, *d) for d in SHIFTS.values()]
        spred, spx = classify(model, shifted)
        row = ", ".join(f"{k} {CLASSES[c]} ({p:.2f})" for k, c, p in zip(SHIFTS, spred, spx))
        correct += int(np.sum(spred == CLASSES.index(name)))
        print(f"  {name} shifted one pixel: {row}")
    print(f"  {correct} of {2 * len(SHIFTS)} shifted images still classified correctly "
          f"(P(X) shown: max pooling absorbs part of a shift, not all of it)")
    return pred, correct


if __name__ == "__main__":
    main()
