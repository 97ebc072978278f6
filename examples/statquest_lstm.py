"""StatQuest "Long Short-Term Memory with PyTorch + Lightning": one LSTM unit predicting
day 5 of two companies' stock values from days 1..4.

    f = sigmoid(wlr1*h + wlr2*x + blr1)    # % of the long-term memory to remember
    i = sigmoid(wpr1*h + wpr2*x + bpr1)    # % of the potential memory to remember
    g = tanh(wp1*h + wp2*x + bp1)          # potential long-term memory
    c = c*f + i*g
    o = sigmoid(wo1*h + wo2*x + bo1)       # % of the potential short-term memory
    h = tanh(c)*o
Company A [0, 0.5, 0.25, 1] -> 0, company B [1, 0.5, 0.25, 1] -> 1; the prediction is h
after day 4 starting from c = h = 0; loss = squared residual, batch 1.

Part 1 writes the unit by hand with fastnn tensor ops and trains it with Adam (defaults);
part 2 is the same problem with nn.LSTM(input_size=1, hidden_size=1) and Adam(lr=0.1).

Run: python examples/statquest_lstm.py
"""
import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
from fastnn.optim import Adam

# The video's initial weights (torch.manual_seed(42) normals), biases 0.
START = dict(wlr1=0.3367, wlr2=0.1288, blr1=0.0, wpr1=0.2345, wpr2=0.2303, bpr1=0.0,
             wp1=-1.1229, wp2=-0.1863, bp1=0.0, wo1=2.2082, wo2=-0.6380, bo1=0.0)
# The video's weights after training.
TRAINED = dict(wlr1=2.70, wlr2=1.63, blr1=1.62, wpr1=2.00, wpr2=1.65, bpr1=0.62, wp1=1.41,
               wp2=0.94, bp1=-0.32, wo1=4.38, wo2=-0.19, bo1=0.59)
INPUTS = [[0.0, 0.5, 0.25, 1.0], [1.0, 0.5, 0.25, 1.0]]  # company A, company B
LABELS = [0.0, 1.0]


class LSTMbyHand(nn.Module):
    def __init__(self, **values):
        super().__init__()
        # NOTE: each weight is a 1-element vector rather than a 0-d tensor: the autograd
        # core's gradient accumulation turns summed 0-d gradients into NumPy scalars (h feeds
        # three gates), which the kernels reject; (1,) tensors behave identically otherwise.
        for name, v in {**START, **values}.items():
            setattr(self, name, nn.Parameter(fastnn.tensor([float(v)])))

    def unit(self, x, c, h):
        f = F.sigmoid(h * self.wlr1 + x * self.wlr2 + self.blr1)
        i = F.sigmoid(h * self.wpr1 + x * self.wpr2 + self.bpr1)
        g = F.tanh(h * self.wp1 + x * self.wp2 + self.bp1)
        c = c * f + i * g
        o = F.sigmoid(h * self.wo1 + x * self.wo2 + self.bo1)
        return c, F.tanh(c) * o

    def forward(self, days):
        """days: (4,) tensor; returns h after the last day, shape (1,)."""
        c = h = fastnn.tensor([0.0])
        for t in range(days.shape[0]):
            c, h = self.unit(days[t], c, h)
        return h


class LightningLSTM(nn.Module):
    """The same problem on nn.LSTM: the sequence as (seq_len=4, input_size=1), unbatched."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(input_size=1, hidden_size=1)

    def forward(self, days):
        out, _ = self.lstm(days.reshape(-1, 1))
        return out[-1]  # only the last step's output is the prediction


def predict(model):
    with fastnn.no_grad():
        return [model(fastnn.tensor(x)).item() for x in INPUTS]


def train(model, lr=0.001, epochs=5000, stop=None):
    """Adam on the squared residual, one company per step (batch 1). stop(pred_a, pred_b)
    ends training early once true (checked every 50 epochs). Returns the epochs run."""
    opt = Adam(model.parameters(), lr=lr)
    xs = [fastnn.tensor(x) for x in INPUTS]
    ys = [fastnn.tensor(y) for y in LABELS]
    for epoch in range(1, epochs + 1):
        for x, y in zip(xs, ys):
            opt.zero_grad()
            d = model(x) - y
            loss = (d * d).sum()
            loss.backward()
            opt.step()
        if stop is not None and epoch % 50 == 0 and stop(*predict(model)):
            break
    return epoch


def main(epochs=5000, lstm_epochs=300):
    fastnn.manual_seed(0)
    hand = LSTMbyHand()
    a, b = predict(hand)
    print(f"LSTM by hand, initial weights:  A -> {a:.4f}, B -> {b:.4f}  (observed 0, 1)")
    a, b = predict(LSTMbyHand(**TRAINED))
    print(f"LSTM by hand, video's trained weights: A -> {a:.4f}, B -> {b:.4f}")
    n = train(hand, epochs=epochs)
    a, b = predict(hand)
    print(f"LSTM by hand after {n} epochs of Adam (lr 0.001): A -> {a:.4f}, B -> {b:.4f}")
    print("  weights: " + ", ".join(f"{k}={getattr(hand, k).item():.2f}" for k in START))
    model = LightningLSTM()
    n = train(model, lr=0.1, epochs=lstm_epochs)
    a, b = predict(model)
    print(f"nn.LSTM(1, 1) after {n} epochs of Adam (lr 0.1): A -> {a:.4f}, B -> {b:.4f}")
    return hand, model


if __name__ == "__main__":
    main()
