"""StatQuest "Backpropagation main ideas": a softplus network fitted to three doses.

    h1 = softplus(x*w1 + b1), h2 = softplus(x*w2 + b2), y = h1*w3 + h2*w4 + b3
Doses [0, 0.5, 1], observed [0, 1, 0], loss SSR = sum((observed - predicted)^2).
First gradient descent on b3 alone (lr 0.1) from b3 = 0, which reaches the least-squares
value of b3; then all seven weights and biases optimised together.

Run: python examples/statquest_backprop.py
"""
import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
from fastnn.optim import SGD

START = dict(w1=3.34, b1=-1.43, w2=-3.53, b2=0.57, w3=-1.22, w4=-2.30, b3=0.0)
DOSES = [0.0, 0.5, 1.0]
OBSERVED = [0.0, 1.0, 0.0]


class SoftplusNet(nn.Module):
    def __init__(self, train_all=False, **values):
        super().__init__()
        values = {**START, **values}
        for name, v in values.items():
            setattr(self, name, nn.Parameter(fastnn.tensor(v), requires_grad=train_all or name == "b3"))

    def forward(self, x):
        h1 = F.softplus(x * self.w1 + self.b1)
        h2 = F.softplus(x * self.w2 + self.b2)
        return h1 * self.w3 + h2 * self.w4 + self.b3


def fit(model, lr=0.1, max_steps=5000, tol=1e-6):
    """Gradient descent on the SSR until the step sizes fall below tol; returns (steps, ssr)."""
    x, y = fastnn.tensor(DOSES), fastnn.tensor(OBSERVED)
    ssr_fn = nn.MSELoss(reduction="sum")  # SSR is the summed squared residual
    opt = SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    for step in range(max_steps):
        opt.zero_grad()
        ssr = ssr_fn(model(x), y)
        ssr.backward()
        largest_step = max(abs(p.grad.item()) * lr if p.grad.numel() == 1 else 0.0
                           for p in model.parameters() if p.grad is not None)
        if largest_step < tol:
            break
        opt.step()
    with fastnn.no_grad():
        return step, ssr_fn(model(x), y).item()


def main():
    net = SoftplusNet()
    steps, ssr = fit(net)
    print(f"b3 alone: {steps} steps, b3 = {net.b3.item():.4f}, SSR = {ssr:.4f}")
    full = SoftplusNet(train_all=True)
    steps_all, ssr_all = fit(full, max_steps=20000)
    with fastnn.no_grad():
        pred = full(fastnn.tensor(DOSES)).tolist()
    print(f"all seven parameters: {steps_all} steps, SSR = {ssr_all:.5f}, "
          f"predictions {[round(p, 3) for p in pred]} for observed {OBSERVED}")
    return net.b3.item(), ssr, ssr_all


if __name__ == "__main__":
    main()
