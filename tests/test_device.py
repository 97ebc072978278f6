"""The device model (issue 6) on the FAKE CUDA backend (tests/fake_cuda.py).

THESE TESTS CHECK THE PYTHON PLUMBING ONLY, NOT THE CUDA KERNELS: the fake runs fastnn._C's
CPU kernels on host buffers dressed as device arrays, so a CUDA result here must equal the
CPU result bit for bit. What they show: constructors and moves put data where asked, every op
dispatches to the backend of its tensors' device (fake.calls records it), autograd,
modules, optimizers, save/load and DLPack work on device tensors, data reaches the host only
through .numpy()/.item()/.tolist()/.cpu()/printing, and mixed devices or host-only ops fail
with a clear "[op] ..." error. tests/test_cuda.py checks the real kernels on a GPU.
"""
import subprocess
import sys

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import fake_cuda as fake
from fake_cuda import fake_cuda  # noqa: F401 - the fixture
from harness import expect_error

pytestmark = pytest.mark.usefixtures("fake_cuda")


def pair(a, requires_grad=False):
    """The same values as a CPU tensor and a (fake) CUDA tensor."""
    c = fastnn.tensor(a, requires_grad=requires_grad)
    g = fastnn.tensor(a, device="cuda", requires_grad=requires_grad)
    return c, g


def host(t):
    return t.detach().cpu().numpy()


def same(cpu, dev):
    """dev is a CUDA tensor holding exactly cpu's values (same kernels underneath)."""
    assert dev.is_cuda and dev.device == "cuda:0", dev.device
    assert cpu.dtype is dev.dtype and tuple(cpu.shape) == tuple(dev.shape)
    np.testing.assert_array_equal(host(dev), host(cpu))


# ---- fastnn.cuda ------------------------------------------------------------------------------
def test_cuda_module_on_fake():
    assert fastnn.cuda.is_available() and fastnn.cuda.is_built()
    assert fastnn.cuda.device_count() == 1
    assert "fake" in fastnn.cuda.get_device_name()
    assert fastnn.cuda.get_device_capability(0) == (9, 0)
    assert "available, 1 device(s): fastnn fake CUDA device" in fastnn.show_config()
    fastnn.cuda.synchronize()
    expect_error(ValueError, "get_device_name", fastnn.cuda.get_device_name, 3)
    before = fastnn.cuda.memory_allocated()
    t = fastnn.zeros(1000, device="cuda")
    assert fastnn.cuda.memory_allocated() == before + 4000
    assert fastnn.cuda.memory_reserved() >= fastnn.cuda.memory_allocated()
    del t
    assert fastnn.cuda.memory_allocated() == before
    fastnn.cuda.empty_cache()
    assert fastnn.cuda.memory_reserved() == fastnn.cuda.memory_allocated()
    fastnn.cuda.set_matmul_precision("high")
    assert fastnn.cuda.get_matmul_precision() == "high"
    expect_error(ValueError, "set_matmul_precision", fastnn.cuda.set_matmul_precision, "tf32")


def test_missing_backend_is_remembered(monkeypatch):
    fastnn.cuda._restore((None, None, None, False))  # as after `import fastnn` (the fixture restores)
    monkeypatch.setitem(sys.modules, "fastnn._C_cuda", None)  # makes the import fail ...
    monkeypatch.delattr(fastnn, "_C_cuda", raising=False)  # ... even after a real import
    assert fastnn.cuda.is_built() is False and fastnn.cuda.is_available() is False
    assert fastnn.cuda.device_count() == 0
    assert "fastnn._C_cuda" in fastnn.cuda._unavailable_reason()
    msg = expect_error(RuntimeError, "synchronize", fastnn.cuda.synchronize)
    assert "CUDA unavailable" in msg and "_C_cuda" in msg
    expect_error(RuntimeError, "zeros", fastnn.zeros, 2, device="cuda")
    assert "not available: " in fastnn.show_config()


def test_no_devices_is_unavailable():
    fake.N_DEVICES = 0
    assert fastnn.cuda.is_built() and not fastnn.cuda.is_available()
    msg = expect_error(RuntimeError, "ones", fastnn.ones, 2, device="cuda")
    assert "no CUDA device" in msg


def test_import_fastnn_does_not_load_the_backend():
    code = ("import sys, fastnn; x = fastnn.ones(3) + 1; fastnn.nn.Linear(2, 2); "
            "print('fastnn._C_cuda' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ,
                              "PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_fake_fails_loudly_on_host_use():
    """The fake itself: NumPy functions and ndarray arguments are refused (so the plumbing
    tests below would catch a CUDA array leaking into host code)."""
    a = fastnn.ones(3, device="cuda")._data
    with pytest.raises(TypeError):
        np.broadcast_to(a, (2, 3))
    with pytest.raises(TypeError):
        np.add(a, 1)
    expect_error(TypeError, "binary", fake.binary, a, np.ones(3, np.float32), "add",
                 match="b must be a CUDA array")
    with pytest.raises(TypeError):
        a.reshape(3, 1)  # the contract's reshape takes one tuple


# ---- constructors and moves -------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda d: fastnn.tensor([[1.5, -2.0], [3.0, 4.0]], device=d),
    lambda d: fastnn.tensor([1, 2, 3], device=d),
    lambda d: fastnn.zeros(2, 3, device=d),
    lambda d: fastnn.ones((4,), dtype=fastnn.int64, device=d),
    lambda d: fastnn.full((2, 2), 7.5, device=d),
    lambda d: fastnn.full((3,), 2, device=d),
    lambda d: fastnn.empty(0, 5, device=d).fill_(1.0),
    lambda d: fastnn.arange(7, device=d),
    lambda d: fastnn.arange(0.0, 1.0, 0.25, device=d),
    lambda d: fastnn.linspace(-1, 1, 5, device=d),
    lambda d: fastnn.manual_seed(3) and fastnn.rand(3, 4, device=d),
    lambda d: fastnn.manual_seed(3) and fastnn.randn(5, device=d),
    lambda d: fastnn.manual_seed(3) and fastnn.randint(0, 10, (6,), device=d),
    lambda d: fastnn.zeros_like(fastnn.ones(2, 2, device=d)),
    lambda d: fastnn.full_like(fastnn.ones(3, device=d), 4.0),
    lambda d: fastnn.ones_like(fastnn.zeros(2, dtype=fastnn.int64, device=d)),
], ids=lambda f: "")
def test_constructors_on_device(make):
    same(make(None), make("cuda"))


def test_like_constructors_keep_the_device_unless_told():
    t = fastnn.ones(2, device="cuda")
    assert fastnn.empty_like(t).is_cuda and fastnn.rand_like(t).is_cuda
    assert fastnn.randn_like(t, device="cpu").device == "cpu"
    assert fastnn.zeros_like(t, device="cpu").device == "cpu"
    assert fastnn.tensor(t).is_cuda  # tensor(t) copies onto t's device, as torch
    assert fastnn.tensor(t, device="cpu").device == "cpu"


def test_to_cuda_cpu_round_trip(rng):
    a = rng.standard_normal((3, 5)).astype(np.float32)
    c = fastnn.tensor(a)
    g = c.cuda()
    assert g.is_cuda and not c.is_cuda and g.device == fastnn.device("cuda", 0)
    assert g.to("cuda") is g and g.cuda() is g and c.cpu() is c and c.to("cpu") is c
    np.testing.assert_array_equal(g.cpu().numpy(), a)
    np.testing.assert_array_equal(c.to(fastnn.device("cuda:0")).cpu().numpy(), a)
    g.add_(1.0)  # a copy: the CPU tensor is unchanged
    np.testing.assert_array_equal(c.numpy(), a)
    # dtype and device together, and to(other)
    i = g.to("cpu", fastnn.int64)
    assert i.device == "cpu" and i.dtype is fastnn.int64
    j = c.to(dtype=fastnn.int64, device="cuda")
    assert j.is_cuda and j.dtype is fastnn.int64
    k = fastnn.zeros(1, dtype=fastnn.int64).to(g)
    assert k.is_cuda and k.dtype is fastnn.float32
    assert fastnn.as_tensor(c, device="cuda").is_cuda


def test_second_device():
    fake.N_DEVICES = 2
    a = fastnn.ones(3, device="cuda:1")
    assert a.device == "cuda:1" and a._data.device_index == 1
    assert fastnn.ones(1).cuda(1).device == "cuda:1"
    assert nn.Linear(1, 1).cuda(1).weight.device == "cuda:1"
    b = a.to("cuda:0")
    assert b.device == "cuda:0"
    msg = expect_error(RuntimeError, "add", lambda: a + b)
    assert "got cuda:1 and cuda:0" in msg
    expect_error(RuntimeError, "zeros", fastnn.zeros, 1, device="cuda:2", match="index")


def test_data_reaches_the_host_only_when_asked():
    g = fastnn.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda")
    expect_error(TypeError, "numpy", g.numpy, match="use .cpu() first")
    expect_error(TypeError, "__array__", np.asarray, g)
    assert g.sum().item() == 10.0 and g.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert float(g.max()) == 4.0
    assert bool(g.sum())
    r = repr(g)
    assert "device='cuda:0'" in r and "3." in r
    assert g.is_contiguous() and g.stride() == (2, 1) and g.data_ptr() == g._data.data_ptr


# ---- ops dispatch by device ---------------------------------------------------------------------
X = np.array([[0.5, -1.25, 2.0, 0.0, 3.5], [-0.75, 1.5, -2.5, 4.0, 0.25],
              [1.0, 2.0, -3.0, -0.5, 0.125]], np.float32)
W = np.arange(20, dtype=np.float32).reshape(4, 5) / 17 - 0.5
B = np.array([0.1, -0.2, 0.3, 0.0], np.float32)

OPS = {
    "relu": lambda x, w, b: F.relu(x),
    "sigmoid_tanh": lambda x, w, b: x.sigmoid() + x.tanh(),
    "gelu_softplus": lambda x, w, b: F.gelu(x) * F.softplus(x, beta=2.0),
    "arith_scalars": lambda x, w, b: (2.0 - x) * 3 / (x.abs() + 1) ** 2 - (-x),
    "broadcast": lambda x, w, b: x + b.sum().reshape(1, 1) * x.sum(1, keepdim=True),
    "exp_log_sqrt": lambda x, w, b: (x.exp() + 1).log() + (x * x + 1).sqrt(),
    "max_min_clamp": lambda x, w, b: fastnn.maximum(x, x * 0.5) + x.clamp(-1, 1),
    "matmul": lambda x, w, b: x @ w.reshape(5, 4),
    "matmul_batched": lambda x, w, b: fastnn.matmul(x.reshape(3, 1, 5), w.reshape(1, 5, 4)),
    "matmul_bcast": lambda x, w, b: fastnn.matmul(x.reshape(3, 1, 5),
                                                  w.reshape(5, 4).expand(3, 5, 4)),
    "matmul_vec": lambda x, w, b: fastnn.matmul(x, w.sum(0) * 0.5),
    "matmul_partial_bcast": lambda x, w, b: fastnn.matmul(x.reshape(3, 1, 1, 5),
                                                          w.reshape(2, 5, 2)),
    "linear": lambda x, w, b: F.linear(x, w, b),
    "linear_3d_gelu": lambda x, w, b: F.linear(x.reshape(3, 1, 5), w, b, act="gelu"),
    "softmax": lambda x, w, b: x.softmax(1) * x.log_softmax(0),
    "reductions": lambda x, w, b: x.sum() + x.mean() + x.max() - x.min() + x.sum(0).sum(),
    "max_dim": lambda x, w, b: x.max(1).values * 2 + x.min(0, keepdim=True).values.sum(),
    "expand": lambda x, w, b: b.reshape(4, 1).expand(4, 5) * w,
    "cross_entropy": lambda x, w, b: F.cross_entropy(x, fastnn.tensor([4, 0, 1], device=x.device)),
    "cross_entropy_none": lambda x, w, b: F.cross_entropy(
        x, fastnn.tensor([4, -100, 1], device=x.device), reduction="none"),
    "mse": lambda x, w, b: F.mse_loss(x, x.detach() * 0.5 + 1.0) + F.mse_loss(
        w, w * 2, reduction="sum"),
    "flatten_squeeze": lambda x, w, b: x.unsqueeze(0).flatten().squeeze() * 2,
    "dropout_eval": lambda x, w, b: F.dropout(x, 0.5, training=False) + 1,
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_dispatch_forward_backward(name):
    """Each op on CUDA tensors: the CUDA backend runs it (never _C on device data), the
    result stays on the device, and values and gradients equal the CPU run's."""
    fn = OPS[name]
    ins_c, ins_g = zip(*(pair(a, requires_grad=True) for a in (X, W, B)))
    fake.calls.clear()
    out_c, out_g = fn(*ins_c), fn(*ins_g)
    assert fake.calls, "no op reached the CUDA backend"
    same(out_c, out_g)
    r = np.linspace(-1, 1, out_c.numel(), dtype=np.float32).reshape(tuple(out_c.shape))
    out_c.backward(fastnn.tensor(r))
    out_g.backward(fastnn.tensor(r, device="cuda"))
    for tc, tg in zip(ins_c, ins_g):
        assert (tc.grad is None) == (tg.grad is None)
        if tc.grad is not None:
            same(tc.grad, tg.grad)


def test_no_grad_fast_paths_and_argmax():
    c, g = pair(X)
    with fastnn.no_grad():
        same(F.relu(c), F.relu(g))
        same(c @ fastnn.tensor(W.T.copy()), g @ fastnn.tensor(W.T.copy(), device="cuda"))
    same(c.argmax(), g.argmax())
    same(c.argmax(1, keepdim=True), g.argmax(1, keepdim=True))
    same(c.long().sum(), g.long().sum())
    same(c.long() + 2, g.long() + 2)
    same(c.long() / 2, g.long() / 2)


def test_backward_seed_accumulation_and_shared_inputs():
    c, g = pair(X, requires_grad=True)
    for t in (c, g):
        y = (t * t).sum() + (t.exp() * t).sum()  # t used by several ops: pending grads add
        y.backward()
        (t * 2.0).sum().backward()  # accumulates into .grad on the device
    same(c.grad, g.grad)
    assert g.grad.is_cuda


def test_mixed_devices_raise():
    c, g = pair(X)
    w_g = fastnn.tensor(W, device="cuda")
    msg = expect_error(RuntimeError, "add", lambda: c + g)
    assert "expected all tensors on the same device, got cpu and cuda:0" in msg
    expect_error(RuntimeError, "mul", lambda: g * c, match="got cuda:0 and cpu")
    expect_error(RuntimeError, "matmul", fastnn.matmul, c, w_g.reshape(5, 4))
    expect_error(RuntimeError, "matmul", fastnn.matmul, c.reshape(3, 1, 5), w_g.reshape(5, 4))
    expect_error(RuntimeError, "linear", F.linear, g, fastnn.tensor(W))
    expect_error(RuntimeError, "linear", F.linear, c, fastnn.tensor(W),
                 fastnn.tensor(B, device="cuda"))
    expect_error(RuntimeError, "cross_entropy", F.cross_entropy, g, fastnn.tensor([0, 1, 2]))
    expect_error(RuntimeError, "mse_loss", F.mse_loss, g, c)
    expect_error(RuntimeError, "add_", g.add_, c)
    expect_error(RuntimeError, "backward", fastnn.ones(2, device="cuda", requires_grad=True)
                 .sum().backward, fastnn.tensor(1.0))
    # the net under every Function: a CUDA tensor among the arguments is checked
    expect_error(RuntimeError, "binary", fastnn._functions.elementwise.Binary.apply, g, c, "add")


@pytest.mark.parametrize("op,fn", [
    ("getitem", lambda g: g[0]),
    ("__setitem__", lambda g: g.__setitem__(0, 1.0)),
    ("transpose", lambda g: g.transpose(0, 1)),
    ("permute", lambda g: g.T),
    ("permute", lambda g: g.permute(1, 0)),
    ("cat", lambda g: fastnn.cat([g, g])),
    ("stack", lambda g: fastnn.stack([g, g])),
    ("cat", lambda g: fastnn.cat([g.cpu(), g])),      # (a host tensor first: the C route
    ("stack", lambda g: fastnn.stack((g.cpu(), g))),  # hands the call to the general one)
    ("where", lambda g: fastnn.where(fastnn.tensor([True, False, True, False, True]), g, 0.0)),
    ("eq", lambda g: g == 1.0),
    ("lt", lambda g: g < g),
    ("conv2d", lambda g: F.conv2d(g.reshape(1, 1, 3, 5), fastnn.ones(1, 1, 2, 2, device="cuda"))),
    ("conv2d", lambda g: nn.Conv2d(1, 2, 2).cuda()(g.reshape(1, 1, 3, 5))),
    ("max_pool2d", lambda g: F.max_pool2d(g.reshape(1, 1, 3, 5), 2)),
    ("avg_pool2d", lambda g: nn.AvgPool2d(2)(g.reshape(1, 1, 3, 5))),
    ("lstm", lambda g: nn.LSTM(5, 2).cuda()(g.reshape(3, 1, 5))),
    ("rnn", lambda g: nn.RNN(5, 2).cuda()(g.reshape(3, 1, 5))),
    ("gradcheck", lambda g: fastnn.autograd.gradcheck(lambda t: t * 2,
                                                      [g.requires_grad_()])),
])
def test_host_only_ops_refuse_cuda_tensors(op, fn):
    g = fastnn.tensor(X, device="cuda")
    msg = expect_error(RuntimeError, op, fn, g)
    assert "not supported on device cuda:0" in msg and ".cpu()" in msg


# ---- in-place ------------------------------------------------------------------------------
def test_inplace_ops_on_device():
    c, g = pair(X)
    for t in (c, g):
        t.add_(1.5).mul_(2).div_(fastnn.ones(5, device=t.device) * 4).sub_(t * 0.5, alpha=2)
    same(c, g)
    i_c, i_g = pair(np.arange(6).reshape(2, 3))
    for t in (i_c, i_g):
        t.add_(3).mul_(t)
    same(i_c, i_g)
    expect_error(TypeError, "add_", i_g.add_, 0.5)
    g.zero_()
    assert g.sum().item() == 0.0 and g.is_cuda
    g.fill_(fastnn.tensor(2.0, device="cuda"))
    assert g.sum().item() == 30.0
    g.copy_(fastnn.tensor(X))  # host -> device: an explicit copy
    np.testing.assert_array_equal(g.cpu().numpy(), X)
    c.copy_(g * 2)  # device -> host
    np.testing.assert_array_equal(c.numpy(), X * 2)
    g.copy_(fastnn.ones(5, device="cuda"))  # device -> device, broadcast
    assert g.sum().item() == 15.0
    fastnn.manual_seed(1)
    g.uniform_(-1, 1)
    fastnn.manual_seed(1)
    c.uniform_(-1, 1)
    same(c, g)
    nn.init.kaiming_normal_(g)
    assert g.is_cuda and g.abs().max().item() > 0


# ---- modules, optimizers, serialization -------------------------------------------------------
def mlp():
    fastnn.manual_seed(7)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(),
                         nn.Dropout(0.25), nn.Linear(8, 3))


def test_module_to_moves_parameters_in_place():
    m = mlp()
    params = list(m.parameters())
    m.register_buffer("scale", fastnn.ones(3))
    (m(fastnn.tensor(X)).sum()).backward()
    assert m.to("cuda") is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.is_cuda and p.grad.is_cuda and isinstance(p, nn.Parameter) for p in params)
    assert m.scale.is_cuda and "scale" in dict(m.named_buffers())
    m.cpu()
    assert not any(p.is_cuda for p in params) and not m.scale.is_cuda
    assert m.cuda() is m and all(p.is_cuda for p in m.parameters())
    assert m.to(fastnn.float32) is m  # a dtype alone changes nothing


@pytest.mark.parametrize("make_opt", [
    lambda ps: fastnn.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: fastnn.optim.Adam(ps, lr=0.01, weight_decay=0.001),
])
def test_training_on_device_matches_cpu(make_opt):
    """Three training steps of an MLP (dropout on) on the device give the CPU's parameters
    exactly; optimizer state lives on the device."""
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((4, 6, 5)).astype(np.float32)
    ys = rng.integers(0, 3, (4, 6))
    results = []
    for dev in ("cpu", "cuda"):
        m = mlp().to(dev)
        opt = make_opt(m.parameters())
        fastnn.manual_seed(11)  # the same dropout masks on both runs
        for x, y in zip(xs, ys):
            opt.zero_grad()
            loss = F.cross_entropy(m(fastnn.tensor(x, device=dev)),
                                   fastnn.tensor(y, device=dev))
            loss.backward()
            opt.step()
        results.append((m, opt, loss))
    (mc, oc, lc), (mg, og, lg) = results
    same(lc, lg)
    for pc, pg in zip(mc.parameters(), mg.parameters()):
        same(pc, pg)
    for st in og.state.values():
        for k, v in st.items():
            if isinstance(v, fastnn.Tensor):
                assert v.is_cuda, k
    # optimizer state_dict saved from CPU loads onto the device parameters
    og.load_state_dict(oc.state_dict())
    for st in og.state.values():
        assert all(v.is_cuda for v in st.values() if isinstance(v, fastnn.Tensor))


def test_optimizer_device_errors():
    m = nn.Linear(3, 2)
    opt = fastnn.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(fastnn.ones(1, 3)).sum().backward()
    opt.step()  # momentum buffers on the CPU
    m.cuda()
    m(fastnn.ones(1, 3, device="cuda")).sum().backward()
    msg = expect_error(RuntimeError, "SGD", opt.step)
    assert "momentum buffers" in msg and "cuda:0" in msg
    a = nn.Parameter(fastnn.ones(2))
    b = nn.Parameter(fastnn.ones(2, device="cuda"))
    assert b.is_cuda
    opt2 = fastnn.optim.Adam([a, b])
    (a.sum() + b.sum().cpu()).backward()
    expect_error(RuntimeError, "Adam", opt2.step, match="same device")
    b.grad = fastnn.ones(2)  # a CPU gradient for a CUDA parameter
    a.grad = None
    expect_error(RuntimeError, "Adam", opt2.step, match="gradients")


def test_state_dict_save_load_from_device(tmp_path):
    m = mlp().cuda()
    sd = m.state_dict()
    assert all(v.is_cuda for v in sd.values())
    fastnn.save(sd, tmp_path / "m.safetensors")
    back = fastnn.load(tmp_path / "m.safetensors")
    for k, v in sd.items():
        assert not back[k].is_cuda
        np.testing.assert_array_equal(back[k].numpy(), v.cpu().numpy())
    fastnn.save(sd["0.bias"], tmp_path / "t.safetensors")
    m2 = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Dropout(0.25),
                       nn.Linear(8, 3)).cuda()
    m2.load_state_dict(back)  # host values into device parameters
    m4 = mlp().cuda()
    with fastnn.no_grad():
        for p in m4.parameters():
            p.zero_()
    m4.load_state_dict(sd)  # device to device
    for a, b in zip(m4.parameters(), m.parameters()):
        same(b, a)
    m3 = mlp()
    m3.load_state_dict(sd)  # device values into host parameters
    x = fastnn.tensor(X)
    m2.eval(), m3.eval()
    same(m3(x), m2(x.cuda()))


def test_deepcopy_and_pickle_keep_the_device():
    import copy
    import pickle
    m = mlp().cuda()
    m.register_buffer("steps", fastnn.zeros(2, dtype=fastnn.int64, device="cuda"))
    m2 = copy.deepcopy(m)
    for (n, a), (_, b) in zip(m.state_dict(keep_vars=True).items(),
                              m2.state_dict(keep_vars=True).items()):
        same(a.detach(), b.detach())
        assert type(a) is type(b) and a.requires_grad == b.requires_grad, n
        assert a.data_ptr() != b.data_ptr(), n  # a copy, not shared memory
    t = pickle.loads(pickle.dumps(fastnn.tensor(X, device="cuda", requires_grad=True)))
    assert t.is_cuda and t.requires_grad and t.is_leaf
    np.testing.assert_array_equal(t.detach().cpu().numpy(), X)
    c = pickle.loads(pickle.dumps(fastnn.tensor(X)))  # host tensors as before
    assert not c.is_cuda


def test_dropout_training_on_device():
    c, g = pair(X)
    fastnn.manual_seed(5)
    yc = F.dropout(c, 0.5)
    fastnn.manual_seed(5)
    yg = F.dropout(g, 0.5)
    same(yc, yg)


def test_autograd_through_moves():
    """to()/cuda()/cpu() are differentiable: the gradient comes back to the source device."""
    c = fastnn.tensor(X, requires_grad=True)
    g = c.cuda()
    assert not g.is_leaf
    y = (g * g).sum().cpu()
    y.backward()
    assert not c.grad.is_cuda
    np.testing.assert_array_equal(c.grad.numpy(), 2 * X)


# ---- DLPack -----------------------------------------------------------------------------------
def test_dlpack_on_device():
    g = fastnn.tensor(X, device="cuda")
    assert g.__dlpack_device__() == (2, 0)
    h = fastnn.from_dlpack(g)  # zero copy: shares g's (fake device) memory
    assert h.is_cuda and h.device == "cuda:0"
    g.fill_(3.0)
    assert h.sum().item() == 45.0
    np.testing.assert_array_equal(fastnn.from_dlpack(np.ones(3, np.float32)).numpy(), 1)
    gi = fastnn.tensor([1, 2], device="cuda").to(dtype=fastnn.bool)
    expect_error(TypeError, "from_dlpack", fastnn.from_dlpack, gi, match="float32 or int64")


def test_dlpack_cuda_producer_without_backend():
    g = fastnn.tensor(X, device="cuda")
    fastnn.cuda._install(None, "fastnn was built without the CUDA backend (test)")
    msg = expect_error(RuntimeError, "from_dlpack", fastnn.from_dlpack, g)
    assert "CUDA unavailable" in msg


def test_dlpack_unknown_device_type():
    class Odd:
        def __dlpack_device__(self):
            return (14, 0)

        def __dlpack__(self, stream=None):
            raise AssertionError("not reached")
    expect_error(TypeError, "from_dlpack", fastnn.from_dlpack, Odd(), match="device type 14")
