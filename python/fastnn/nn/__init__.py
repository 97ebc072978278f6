"""fastnn.nn: layers, containers and losses with PyTorch's names, shapes and defaults."""
from . import functional, init
from .module import Module, Parameter
from .linear import Linear
from .activation import ReLU, Sigmoid, Tanh, GELU, Softplus, Softmax, LogSoftmax
from .container import Sequential, ModuleList
from .layers import Flatten, Dropout, Identity
from .loss import MSELoss, CrossEntropyLoss
from .rnn import RNN, LSTM
from .conv import Conv2d
from .pooling import MaxPool2d, AvgPool2d

__all__ = ["Module", "Parameter", "Linear", "ReLU", "Sigmoid", "Tanh", "GELU", "Softplus",
           "Softmax", "LogSoftmax", "Sequential", "ModuleList", "Flatten", "Dropout",
           "Identity", "MSELoss", "CrossEntropyLoss", "functional", "init"]
__all__ += ["RNN", "LSTM"]
__all__ += ["Conv2d", "MaxPool2d", "AvgPool2d"]
