"""DeepLIFT / DeepLiftSHAP: salbench's own rescale rule (:mod:`salbench.explain.deeplift`).

Oracles. (1) Captum's ``DeepLift`` / ``DeepLiftShap`` maps, to 1e-5 of the map's largest |value|
(max |ours − Captum| ≤ 1e-5 · max |Captum|), on the models and baselines where Captum 0.9 has
none of the bugs the module docstring lists. Measured (float32 and float64): where a ReLU feeds a
max-pool or a max-pool feeds a ReLU, Captum's first hook reads the raw gradient, not the second's
rule, and its maps then differ from the rule by 20–100 % of their maximum unless the reference's
activations at the pool are all zero (the pool's rule is then its gradient) — so on the
trained-like ``tiny`` VGG-16-BN, ResNet-18 and AlexNet for every baseline, on VGG-16 for every
baseline but the all-zero one; an overlapping (3×3, stride 2) pool breaks Captum's maps too.
Where they agree to 1e-5 (measured 1e-7): models without a max-pool (an MLP, a conv + global
average pool net) for any baseline; a 2×2 max-pool between convolutions, where Captum applies its
pool rule (random images leave no |Δx| < eps, where Captum's fallback takes the first sample's
gradient), for any baseline — this checks the own pool rule; and ReLU → max-pool networks with
all-zero reference activations (a bias-free net, VGG-16 at its zero-bias initialisation,
ResNet-18 with identity batch norms) for the all-zero baseline.
(2) Summation-to-delta, Σ_i attribution_i = f_y(x) − f_y(x') (DeepLiftSHAP: minus the mean over
the baselines), to 1e-5 of the batch's largest |f_y(x) − f_y(x')|, in float64, on the
explainable VGG-16, AlexNet and ResNet-18 with trained-like eval-mode batch norms and non-zero
biases, for the zero and the uniform baselines, and on one small net per Captum bug; Captum's
sums are off there by more than 1 % (ResNet-18's zero baseline excepted: its reference
activations are constant at the stem's pool, which keeps Captum's sum, not its map).
(3) Captum with its three bugs fixed by monkeypatching (the hook order of captum PR 1843, a
summing unpool, the whole batch's gradient in the pool fallback of PR 1847): its maps equal
ours to 1e-5 (measured 1e-13) on those same trained-like models, baselines and DeepLiftSHAP.
The PR 1847 fix alone changes nothing there (measured), but belongs to the fixed Captum.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import DeepLift, DeepLiftShap
from explain_helpers import GapNet, conv_flatten_fc, input_size, tiny
from torch import nn

import salbench.explain.gradients as gradients
from salbench.explain import explain
from salbench.explain.deeplift import (
    _ratio_or_gradient,
    rescale_attributions,
    rescale_supported,
    unsupported_modules,
)
from salbench.models import build, make_explainable

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's notices on direct calls

TOLERANCE = 1e-5


def _assert_close_to_max(ours: torch.Tensor, reference: torch.Tensor) -> None:
    """max |ours − reference| ≤ 1e-5 · max |reference|."""
    error = (ours - reference).abs().max().item()
    scale = reference.abs().max().item()
    assert scale > 0
    assert error <= TOLERANCE * scale, f"max error {error:.3e}, {error / scale:.2e} of the max"


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 20), nn.ReLU(), nn.Linear(20, 12),
                         nn.ReLU(), nn.Linear(12, 4))


def _pool_between_convs(kernel: int = 2, stride: int = 2, padding: int = 0) -> nn.Module:
    """Conv - MaxPool - Conv - ReLU - Flatten - Linear: the pool neither feeds nor follows a
    ReLU, so Captum applies its pool rule (2×2 windows: no overlap)."""
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.MaxPool2d(kernel, stride, padding),
                         nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(5 * 8 * 8, 4))


def _pool_then_relu() -> nn.Module:
    """Conv - MaxPool(2) - ReLU - Flatten - Linear: Captum's pool reads the ReLU's raw gradient."""
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 8 * 8, 4))


def _images(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Images from their own generator: never the draw the method's seed gives its baseline."""
    return torch.rand(*shape, dtype=dtype, generator=torch.Generator().manual_seed(7))


def _zoo(arch: str) -> nn.Module:
    """A zoo model at its initialisation (VGG: zero biases; ResNet: identity batch norms)."""
    return make_explainable(build(arch, 4, 3, 32, 0.0625))


# (model factory, baseline, image size): where Captum is correct (module docstring).
AGREEING = {
    "mlp-zero": (_mlp, "zero", 16),
    "mlp-uniform": (_mlp, "uniform", 16),
    "gapnet-uniform": (GapNet, "uniform", 16),
    "pool-between-convs-uniform": (_pool_between_convs, "uniform", 16),
    "pool-between-convs-constant": (_pool_between_convs, 0.3, 16),
    "bias-free-relu-pool-zero": (lambda: conv_flatten_fc(bias=False), "zero", 16),
    "vgg16-init-zero": (lambda: _zoo("vgg16"), "zero", 32),
    "resnet18-init-zero": (lambda: _zoo("resnet18"), "zero", 32),
}


def _no_captum(*args, **kwargs):
    raise AssertionError("Captum was called although the own rescale path supports the model")


def _setup(case: str, seed: int = 0):
    factory, baseline, size = AGREEING[case]
    torch.manual_seed(seed)
    model = factory().eval()
    x = _images(4, 3, size, size)
    y = torch.tensor([0, 3, 1, 2])
    return model, x, y, baseline


@pytest.mark.parametrize("case", list(AGREEING))
def test_deeplift_equals_captum_where_captum_is_correct(case, monkeypatch):
    model, x, y, baseline = _setup(case)
    assert rescale_supported(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the method's seed: the same uniform draw
        reference = gradients.make_baseline(baseline, x)
    expected = DeepLift(model).attribute(x, baselines=reference, target=y).detach()
    monkeypatch.setattr(gradients, "DeepLift", _no_captum)
    _assert_close_to_max(explain(model, x, y, "deeplift", baseline=baseline), expected)


SHAP_AGREEING = ["mlp-uniform", "gapnet-uniform", "pool-between-convs-uniform",
                 "vgg16-init-zero", "resnet18-init-zero"]


@pytest.mark.parametrize("case", SHAP_AGREEING)
def test_deeplift_shap_equals_captum_where_captum_is_correct(case, monkeypatch):
    """A 3-image distribution ("zero": two all-zero images, Captum's only correct choice on the
    zoo models); Captum runs on the whole batch in one call."""
    model, x, y, baseline = _setup(case)
    if baseline == "zero":
        distribution = torch.zeros(2, *x.shape[1:])
    else:
        torch.manual_seed(1)
        distribution = torch.rand(3, *x.shape[1:])
    expected = DeepLiftShap(model).attribute(x, baselines=distribution, target=y).detach()
    monkeypatch.setattr(gradients, "DeepLiftShap", _no_captum)
    _assert_close_to_max(explain(model, x, y, "deeplift_shap", baseline=distribution), expected)


def test_deeplift_shap_default_draws_the_same_seeded_baselines():
    """Default parameters: 5 uniform images in the batch's range, drawn under ``seed``."""
    model, x, y, _ = _setup("pool-between-convs-uniform")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        low, high = x.min(), x.max()
        distribution = low + (high - low) * torch.rand(5, *x.shape[1:])
    expected = DeepLiftShap(model).attribute(x, baselines=distribution, target=y).detach()
    state = torch.random.get_rng_state()
    ours = explain(model, x, y, "deeplift_shap")
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    _assert_close_to_max(ours, expected)
    assert not torch.equal(explain(model, x, y, "deeplift_shap", seed=1), ours)


def _delta(model, x, y, references, paired=True):
    """f_y(x) − f_y(x'): x' row b of ``references`` (``paired``, or its only row), else the mean
    over all rows (a DeepLiftSHAP distribution)."""
    with torch.no_grad():
        at_x = model(x).gather(1, y[:, None])[:, 0]
        at_ref = model(references)[:, y]  # [n, B]
    if paired and references.shape[0] == x.shape[0]:
        return at_x - at_ref.diagonal()
    return at_x - at_ref.mean(0)


def _sum_error(attribution, delta):
    """max_b |Σ attribution_b − Δf_b| / max_b |Δf_b|."""
    return ((attribution.flatten(1).sum(1) - delta).abs().max() / delta.abs().max()).item()


SUM_ARCHS = ["vgg16", "alexnet", "resnet18"]


@pytest.fixture(scope="module", params=SUM_ARCHS)
def trained_like(request):
    """Explainable zoo model with trained-like eval-mode batch norms (VGG-16 and AlexNet have
    none; their biases are made non-zero), float64; images with an all-zero patch, so some
    activations equal the zero baseline's (|Δx| < eps: the gradient fallback)."""
    arch = request.param
    model = tiny(arch).double().eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype))
    size = input_size(arch)
    torch.manual_seed(0)
    x = _images(3, 3, size, size, dtype=torch.float64)
    x[:, :, : size // 4, : size // 4] = 0
    return arch, model, x, torch.tensor([2, 0, 1])


@pytest.mark.parametrize("baseline", ["zero", "uniform"])
def test_deeplift_sums_to_delta_where_captum_does_not(trained_like, baseline):
    arch, model, x, y = trained_like
    assert rescale_supported(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = gradients.make_baseline(baseline, x)
    ours = explain(model, x, y, "deeplift", baseline=baseline)
    delta = _delta(model, x, y, reference)
    assert _sum_error(ours, delta) <= TOLERANCE
    captum = DeepLift(model).attribute(x, baselines=reference, target=y).detach()
    if baseline == "uniform" or arch != "resnet18":  # ResNet's zero reference is constant at
        assert _sum_error(captum, delta) > 1e-2      # its pool: Captum's sum holds there


CAPTUM_BUGS = {
    "relu-feeds-pool": lambda: conv_flatten_fc(bias=True),
    "pool-feeds-relu": _pool_then_relu,
    "overlapping-pool": lambda: _pool_between_convs(3, 2, 1),
}


@pytest.mark.parametrize("case", list(CAPTUM_BUGS))
def test_small_nets_sum_to_delta_where_captum_bugs_bite(case):
    """One bug each: a hooked nonlinearity feeding another (ReLU → pool, pool → ReLU) reads the
    raw gradient; overlapping 3×3/2 windows sharing an arg-max lose a share in max_unpool."""
    torch.manual_seed(0)
    model = CAPTUM_BUGS[case]().double().eval()
    x = _images(4, 3, 16, 16, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 2])
    reference = torch.rand_like(x)
    delta = _delta(model, x, y, reference)
    assert _sum_error(explain(model, x, y, "deeplift", baseline=reference), delta) <= TOLERANCE
    captum = DeepLift(model).attribute(x, baselines=reference, target=y).detach()
    assert _sum_error(captum, delta) > 1e-2


def _hooks_after_next_rule(module, hook, attr_obj):
    """Captum's ``_register_backward_hook`` with the fix of captum PR 1843 (issue 1104) in
    spirit: the output gradient as the module's full backward pre-hook sees it, i.e. after the
    next module's rule, not as a tensor hook registered before that rule's."""
    grad_out = {}

    def backward_pre_hook(mod, grad_output):
        grad_out[grad_output[0].device] = grad_output[0]

    def pre_hook(mod, inputs):
        def input_tensor_hook(input_grad):
            return hook(mod, input_grad, grad_out[input_grad.device]) if grad_out else None
        inputs[0].register_hook(input_tensor_hook)
        return inputs[0].clone()

    return [module.register_forward_pre_hook(pre_hook),
            module.register_full_backward_pre_hook(backward_pre_hook)]


def _summing_unpool(values, indices, kernel_size, stride, padding, output_size):
    """``max_unpool2d`` that sums where overlapping windows share an arg-max."""
    out = values.new_zeros(*values.shape[:2], output_size[-2] * output_size[-1])
    return out.scatter_add_(2, indices.flatten(2), values.flatten(2)).view(output_size)


class _Whole:
    """``grad_input`` whose ``[0]`` is the whole batch (the fix of captum PR 1847, issue 1276)."""

    def __init__(self, tensor):
        self.tensor, self.shape = tensor, tensor.shape

    def __getitem__(self, index):
        return self.tensor


def _fixed_maxpool2d(module, inputs, outputs, grad_input, grad_output, eps=1e-10):
    import captum.attr._core.deep_lift as captum_deeplift
    return captum_deeplift.maxpool(module, torch.nn.functional.max_pool2d, _summing_unpool,
                                   inputs, outputs, _Whole(grad_input), grad_output, eps=eps)


@pytest.fixture
def fixed_captum(monkeypatch):
    """Captum 0.9 with its three DeepLIFT bugs fixed (the module docstring's list)."""
    import captum.attr._core.deep_lift as captum_deeplift
    monkeypatch.setattr(captum_deeplift, "_register_backward_hook", _hooks_after_next_rule)
    monkeypatch.setitem(captum_deeplift.SUPPORTED_NON_LINEAR, nn.MaxPool2d, _fixed_maxpool2d)


@pytest.mark.parametrize("baseline", ["zero", "uniform"])
def test_equals_captum_with_its_bugs_fixed(trained_like, baseline, fixed_captum):
    """The strongest oracle: with the three fixes patched in, Captum's maps are ours (measured:
    to 1e-13 of the maximum) on every architecture, baseline and DeepLiftSHAP."""
    arch, model, x, y = trained_like
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the methods' seed: their draws
        reference = gradients.make_baseline(baseline, x)
        torch.manual_seed(0)
        distribution = gradients.make_baseline(baseline, x, 3)
    expected = DeepLift(model).attribute(x, baselines=reference, target=y).detach()
    _assert_close_to_max(explain(model, x, y, "deeplift", baseline=baseline), expected)
    if baseline == "uniform":
        expected = DeepLiftShap(model).attribute(x, baselines=distribution, target=y).detach()
        _assert_close_to_max(explain(model, x, y, "deeplift_shap", n_baselines=3), expected)


def test_deeplift_shap_sums_to_mean_delta(trained_like):
    arch, model, x, y = trained_like
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        distribution = gradients.make_baseline("uniform", x, 4)
    ours = explain(model, x, y, "deeplift_shap", n_baselines=4, internal_batch_size=5)
    assert _sum_error(ours, _delta(model, x, y, distribution, paired=False)) <= TOLERANCE
    captum = DeepLiftShap(model).attribute(x, baselines=distribution, target=y).detach()
    assert _sum_error(captum, _delta(model, x, y, distribution, paired=False)) > 1e-2


def test_float32_sums_to_delta_within_rounding():
    """The default dtype: the same property, to float32 rounding (1e-4 of the largest Δf)."""
    model = tiny("resnet18").eval()
    torch.manual_seed(0)
    x = _images(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = gradients.make_baseline("uniform", x)
    ours = explain(model, x, y, "deeplift", baseline="uniform")
    assert _sum_error(ours, _delta(model, x, y, reference)) <= 1e-4


def test_non_explainable_model_runs_on_its_explainable_copy():
    """torchvision-style ResNet (one ReLU module called twice per block): explain copies it."""
    model = tiny("resnet18", explainable=False).double().eval()
    torch.manual_seed(0)
    x = _images(2, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([1, 2])
    ours = explain(model, x, y, "deeplift")
    assert _sum_error(ours, _delta(model, x, y, torch.zeros_like(x[:1]))) <= TOLERANCE


def test_internal_batch_size_and_batch_composition_do_not_change_results():
    model, x, y, _ = _setup("pool-between-convs-uniform")
    distribution = torch.rand(3, *x.shape[1:])
    whole = explain(model, x, y, "deeplift_shap", baseline=distribution, internal_batch_size=1000)
    for size in (1, 4, 7):
        torch.testing.assert_close(explain(model, x, y, "deeplift_shap", baseline=distribution,
                                           internal_batch_size=size), whole,
                                   rtol=1e-5, atol=1e-7)
    single = explain(model, x[2:3], y[2:3], "deeplift_shap", baseline=distribution)
    torch.testing.assert_close(single, whole[2:3], rtol=1e-5, atol=1e-7)
    per_sample = torch.rand_like(x)
    both = explain(model, x, y, "deeplift", baseline=per_sample)
    torch.testing.assert_close(explain(model, x[1:2], y[1:2], "deeplift",
                                       baseline=per_sample[1:2]), both[1:2], rtol=1e-5, atol=1e-7)


class _SigmoidNet(nn.Module):
    """A block whose forward calls nn.Sigmoid: no rule in the own code (Captum's rescale)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.Sigmoid()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


FALLBACKS = {
    "sigmoid": _SigmoidNet,
    "elu": lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ELU(), nn.Flatten(),
                                 nn.Linear(4 * 16 * 16, 3)),
    "maxpool1d": lambda: nn.Sequential(nn.Flatten(), nn.Linear(768, 8), nn.ReLU(),
                                                    nn.Unflatten(1, (1, 8)), nn.MaxPool1d(2),
                                                    nn.Flatten(), nn.Linear(4, 3)),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_unsupported_models_fall_back_to_captum(case):
    torch.manual_seed(0)
    model = FALLBACKS[case]().eval()
    assert not rescale_supported(model) and unsupported_modules(model)
    x = torch.rand(4, 3, 16, 16)
    y = torch.tensor([0, 2, 1, 0])
    expected = DeepLift(model).attribute(x, baselines=torch.zeros_like(x), target=y).detach()
    torch.testing.assert_close(explain(model, x, y, "deeplift"), expected, rtol=0, atol=0)
    distribution = torch.rand(3, *x.shape[1:])
    expected = DeepLiftShap(model).attribute(x, baselines=distribution, target=y).detach()
    torch.testing.assert_close(explain(model, x, y, "deeplift_shap", baseline=distribution),
                               expected, rtol=0, atol=0)


def test_rescale_supported_names_what_it_cannot_handle():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.LazyLinear(3))
    assert unsupported_modules(model) == ["1", "3", "6"]  # training mode; LazyLinear unknown
    model[6] = nn.Linear(4, 3)
    assert unsupported_modules(model.eval()) == [] and rescale_supported(model)
    assert unsupported_modules(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True))) == ["1"]
    assert unsupported_modules(nn.Sequential(nn.MaxPool2d(2, return_indices=True))) == ["0"]
    no_stats = nn.Sequential(nn.BatchNorm2d(4, track_running_stats=False)).eval()
    assert unsupported_modules(no_stats) == ["0"]
    assert unsupported_modules(nn.Tanh()) == ["Tanh"]  # a leaf model is named by its type
    assert rescale_supported(_zoo("vgg16").eval()) and rescale_supported(tiny("alexnet").eval())


def test_model_is_left_as_found():
    """No hooks left on any module, parameters' requires_grad restored (also after an error)."""
    model, x, y, _ = _setup("pool-between-convs-uniform")
    model[0].bias.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    rescale_attributions(model, x, y, torch.zeros_like(x[:1]))
    with pytest.raises(RuntimeError):
        rescale_attributions(model, x[:, :2], y, torch.zeros_like(x[:1, :2]))
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(not m._forward_hooks and not m._forward_pre_hooks and "forward" not in vars(m)
               for m in model.modules())
    own = nn.ReLU()
    own.forward = lambda x: x  # an instance forward of the user's: left to Captum, and kept
    model[3] = own
    assert unsupported_modules(model) == ["3"]
    rescale_attributions(model, x, y, torch.zeros_like(x[:1]))
    assert model[3].forward(torch.tensor(-1.0)) == -1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_multiplier_is_the_ratio_and_the_gradient_where_nothing_changes(dtype):
    """Δy/Δx wherever Δx ≠ 0 (also below Captum's eps of 1e-10), the gradient where Δx = ±0."""
    change = torch.tensor([0.5, 0.0, 0.0, -3e-12, 0.0, 0.0], dtype=dtype)
    delta = torch.tensor([1.0, 0.0, -0.0, -6e-12, 2.0, 0.0], dtype=dtype)
    gradient = torch.tensor([7.0, 1.0, 1.0, 9.0, 1.0, 0.0], dtype=dtype)
    out = _ratio_or_gradient(change, delta, gradient)
    expected = torch.tensor([0.5, 1.0, 1.0, 0.5, 0.0, 0.0], dtype=dtype)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("method,params,match", [
    ("deeplift", {"baseline": torch.zeros(2, 3, 16, 16)}, "baseline must have shape"),
    ("deeplift", {"baseline": torch.zeros(3, 16, 16)}, "baseline must have shape"),
    ("deeplift", {"baseline": "noise"}, "baseline must be one of"),
    ("deeplift", {"seed": 1.5}, "seed must be an int"),
    ("deeplift_shap", {"baseline": torch.zeros(1, 3, 16, 16)}, "n >= 2"),
    ("deeplift_shap", {"baseline": torch.zeros(3, 3, 8, 8)}, "n >= 2"),
    ("deeplift_shap", {"n_baselines": 1}, "at least 2"),
    ("deeplift_shap", {"n_baselines": 0}, "positive integer"),
    ("deeplift_shap", {"internal_batch_size": 0}, "positive integer"),
    ("deeplift_shap", {"baseline": "noise"}, "baseline must be one of"),
])
def test_bad_parameters_raise(method, params, match):
    model, x, y, _ = _setup("mlp-zero")
    with pytest.raises((ValueError, TypeError), match=match):
        explain(model, x, y, method, **params)


def test_bad_inputs_raise():
    model, x, y, _ = _setup("mlp-zero")
    with pytest.raises(ValueError):
        explain(model, x, torch.tensor([0, 1, 2, 9]), "deeplift")  # class out of range
    with pytest.raises(TypeError):
        explain(model, x.long(), y, "deeplift")
    bad = x.clone()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        explain(model, bad, y, "deeplift_shap")
