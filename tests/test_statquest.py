"""The StatQuest examples reproduce the published numbers (design/references.md 1-3, 5)."""
import os
import sys

import numpy as np
import pytest

import fastnn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from examples import (digits_mlp, statquest_backprop, statquest_basic_nn,  # noqa: E402
                      statquest_iris, statquest_relu_net)


def test_basic_nn_dose_curve():
    doses, eff = statquest_basic_nn.dose_curve(statquest_basic_nn.BasicNN())
    eff = eff.numpy()
    assert abs(eff[5] - 1.01) < 1e-4  # dose 0.5
    assert np.all(np.delete(eff, 5) == 0)


def test_basic_nn_training_matches_statquest():
    steps, bias, untrained = statquest_basic_nn.train()
    assert abs(untrained - 17.01) < 1e-4
    assert steps == 34
    assert round(bias, 4) == -16.0019


def test_basic_nn_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = statquest_basic_nn.plot(str(tmp_path / "curve.png"))
    assert os.path.getsize(path) > 1000


def test_softplus_b3_reaches_least_squares_optimum():
    net = statquest_backprop.SoftplusNet()
    _, ssr = statquest_backprop.fit(net)
    # Independent NumPy float64: y = f(x) + b3, so the least-squares b3 is mean(obs - f(x)).
    s = statquest_backprop.START
    x = np.array(statquest_backprop.DOSES)
    obs = np.array(statquest_backprop.OBSERVED)
    sp = lambda z: np.log1p(np.exp(z))  # noqa: E731
    f = sp(x * s["w1"] + s["b1"]) * s["w3"] + sp(x * s["w2"] + s["b2"]) * s["w4"]
    b3_opt = np.mean(obs - f)
    ssr_opt = np.sum((obs - f - b3_opt) ** 2)
    assert abs(net.b3.item() - b3_opt) < 1e-4
    assert abs(ssr - ssr_opt) < 1e-4


def test_softplus_all_parameters_beat_b3_alone():
    _, ssr_b3 = statquest_backprop.fit(statquest_backprop.SoftplusNet())
    _, ssr_all = statquest_backprop.fit(statquest_backprop.SoftplusNet(train_all=True),
                                        max_steps=20000)
    assert ssr_all < 0.1 * ssr_b3


def test_relu_chapter2_fits_targets():
    _, out = statquest_relu_net.train()
    np.testing.assert_allclose(out, [0.0, 1.0, 0.0], atol=1e-3)


def test_iris_hand_network_softmax():
    raw, prob, k = statquest_iris.hand_prediction(0.0, 1.0)
    # Exact: the published weights evaluated independently in NumPy float64.
    p, s = 0.0, 1.0
    h1, h2 = max(-2.5 * p + 0.6 * s + 1.6, 0), max(-1.5 * p + 0.4 * s + 0.7, 0)
    want = np.array([-0.1 * h1 + 1.5 * h2, 2.4 * h1 - 5.2 * h2, -2.2 * h1 + 3.7 * h2 + 1])
    np.testing.assert_allclose(raw.numpy(), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(prob.numpy(), np.exp(want) / np.exp(want).sum(), rtol=1e-6)
    # Published (rounded in the video): raw about (1.43, -0.40, 0.23), softmax about
    # (0.69, 0.10, 0.21). The weights give -0.44 for Versicolor, hence atol 0.05.
    np.testing.assert_allclose(raw.numpy(), [1.43, -0.40, 0.23], atol=0.05)
    np.testing.assert_allclose(prob.numpy(), [0.69, 0.10, 0.21], atol=0.01)
    assert k == 0  # Setosa


def test_iris_trained_from_random_init():
    mean, accs = statquest_iris.evaluate(hidden=16, splits=5)
    assert mean >= 0.95, accs
    assert min(accs) >= 0.89, accs  # no split is a failure (at most 4 of 38 wrong)


def test_digits_mlp_accuracy():
    acc, _, _ = digits_mlp.train(epochs=30)
    assert acc >= 0.95
