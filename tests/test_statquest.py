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
    np.testing.assert_allclose(raw.numpy(), [1.43, -0.40, 0.23], atol=0.01)
    np.testing.assert_allclose(prob.numpy(), [0.69, 0.10, 0.21], atol=0.01)
    assert k == 0  # Setosa


def test_iris_trained_from_random_init():
    acc, _ = statquest_iris.train(hidden=16, epochs=100)
    assert acc >= 0.95


def test_digits_mlp_accuracy():
    acc, _, _ = digits_mlp.train(epochs=30)
    assert acc >= 0.95
