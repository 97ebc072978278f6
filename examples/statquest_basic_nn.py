"""StatQuest "Introduction to PyTorch": the BasicNN dose-effectiveness network.

Two hidden ReLU nodes and an output ReLU:
    out = relu( relu(x*w00 + b00)*w01 + relu(x*w10 + b10)*w11 + final_bias )
With the published weights, doses 0..1 give 0 everywhere except 0.5, which gives 1.01.
Training: only final_bias is trainable, starting at 0; SGD lr=0.1 on the squared residual,
gradients accumulated over the three samples each epoch; stop when the epoch's loss < 1e-4.
StatQuest's result: 34 steps, final_bias = -16.0019.

Run: python examples/statquest_basic_nn.py
"""
import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
from fastnn.optim import SGD

WEIGHTS = dict(w00=1.7, b00=-0.85, w01=-40.8, w10=12.6, b10=0.0, w11=2.7)


class BasicNN(nn.Module):
    def __init__(self, final_bias=-16.0, train_final_bias=False):
        super().__init__()
        for name, value in WEIGHTS.items():
            setattr(self, name, nn.Parameter(fastnn.tensor(value), requires_grad=False))
        self.final_bias = nn.Parameter(fastnn.tensor(final_bias), requires_grad=train_final_bias)

    def forward(self, x):
        top = F.relu(x * self.w00 + self.b00) * self.w01
        bottom = F.relu(x * self.w10 + self.b10) * self.w11
        return F.relu(top + bottom + self.final_bias)


def dose_curve(model, n=11):
    doses = fastnn.linspace(0, 1, n)
    with fastnn.no_grad():
        return doses, model(doses)


def train(lr=0.1, max_epochs=100):
    """Returns (steps taken, final_bias, output at dose 0.5 before training)."""
    model = BasicNN(final_bias=0.0, train_final_bias=True)
    with fastnn.no_grad():
        untrained = model(fastnn.tensor(0.5)).item()
    inputs = fastnn.tensor([0.0, 0.5, 1.0])
    labels = fastnn.tensor([0.0, 1.0, 0.0])
    opt = SGD(model.parameters(), lr=lr)
    for epoch in range(max_epochs):
        total = 0.0
        for i in range(len(inputs)):
            loss = (model(inputs[i]) - labels[i]) ** 2
            loss.backward()  # gradients accumulate over the three samples
            total += loss.item()
        if total < 1e-4:
            break
        opt.step()
        opt.zero_grad()
    return epoch, model.final_bias.item(), untrained


def plot(path):
    """Save the dose-effectiveness curve of the trained network (needs matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doses, eff = dose_curve(BasicNN(), 101)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(doses.numpy(), eff.numpy(), color="green", lw=2, label="BasicNN")
    ax.scatter([0, 0.5, 1], [0, 1, 0], color="black", zorder=3, label="observed")
    ax.set_xlabel("dose")
    ax.set_ylabel("effectiveness")
    ax.set_title("StatQuest BasicNN")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main():
    doses, eff = dose_curve(BasicNN())
    print("dose  ", " ".join(f"{d:5.2f}" for d in doses.tolist()))
    print("output", " ".join(f"{e:5.2f}" for e in eff.tolist()))
    steps, bias, untrained = train()
    print(f"untrained output at dose 0.5: {untrained:.2f}")
    print(f"training stopped after {steps} steps with final_bias = {bias:.4f} "
          f"(StatQuest: 34 steps, -16.0019)")
    return steps, bias


if __name__ == "__main__":
    main()
