"""Optimizers: ``SGD`` and ``Adam`` with PyTorch's update rules.

Each ``step()`` is one call into the compiled module per param group, which updates every
parameter of the group in place (see csrc/cpu/optim.cpp).
"""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam

__all__ = ["Optimizer", "SGD", "Adam"]
