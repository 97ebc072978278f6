"""The book's chapter 2 network: two ReLU hidden nodes and no output bias.

    out = relu(x*w1 + b1)*w3 + relu(x*w2 + b2)*w4
Start w1=0.06, b1=0, w2=3.49, b2=0, w3=-4.11, w4=2.74; SGD lr=0.01 on the summed squared
residual (MSELoss(reduction="sum")), one sample per step, 500 epochs. Afterwards the
outputs for doses [0, 0.5, 1] are (0, 1, 0).

Run: python examples/statquest_relu_net.py
"""
import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
from fastnn.optim import SGD

START = dict(w1=0.06, b1=0.0, w2=3.49, b2=0.0, w3=-4.11, w4=2.74)


class ReluNet(nn.Module):
    def __init__(self):
        super().__init__()
        for name, v in START.items():
            setattr(self, name, nn.Parameter(fastnn.tensor(v)))

    def forward(self, x):
        return F.relu(x * self.w1 + self.b1) * self.w3 + F.relu(x * self.w2 + self.b2) * self.w4


def train(epochs=500, lr=0.01):
    model = ReluNet()
    x = fastnn.tensor([[0.0], [0.5], [1.0]])
    y = fastnn.tensor([[0.0], [1.0], [0.0]])
    loss_fn = nn.MSELoss(reduction="sum")
    opt = SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        for i in range(3):  # batch of one sample
            opt.zero_grad()
            loss_fn(model(x[i]), y[i]).backward()
            opt.step()
    with fastnn.no_grad():
        return model, model(x).reshape(-1).tolist()


def main():
    model, out = train()
    print("outputs for doses [0, 0.5, 1]:", [round(v, 4) for v in out], "(target 0, 1, 0)")
    print("weights:", {k: round(v.item(), 3) for k, v in model.state_dict().items()})
    return out


if __name__ == "__main__":
    main()
