"""Model surgery: explainable copies and the CAM document's head architectures.

- ``make_explainable(model)``: a copy with non-in-place activations and no activation module
  used twice in one forward pass (Captum's DeepLift/DeepLiftShap and Guided Backprop need both;
  torchvision's ResNet blocks call ``self.relu`` two or three times). Outputs are unchanged.
- ``to_conv_flatten_fc(model)``: *Conv - Flatten - Class scores* (document 003, section 4.2): the
  trailing non-convolutional layers of the convolutional part are removed, global average pooling
  is replaced by Flatten and the dense classifier by one linear layer.
- ``to_gap_fc(model)``: *Conv - GAP - Class scores*, the CAM architecture (document 003, 2.1).
- ``build_spec(spec)``: the model a :class:`~salbench.models.zoo.ModelSpec` describes (``build``,
  then its added conv layers, head surgery and ``make_explainable``).
- ``add_conv_layers(model, added)``: AlexNet (or VGG) with extra 3×3 conv layers (document 001,
  section 4.1).
- ``fold_normalisation(model)``: a VGG whose first convolution absorbs the ImageNet input
  normalisation, so it takes pixel-space inputs (document 002's torchvision VGG-16).
- ``randomise_biases(model, std, seed)``: biases drawn from N(0, std²), so an untrained model is
  no longer positively homogeneous (document 003's table 1, Dense row).
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from salbench.models.zoo import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, build, spec_of

_INPLACE_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Hardtanh,
                        nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.RReLU, nn.Threshold)


class ExplainableBasicBlock(BasicBlock):
    """``BasicBlock`` with one ReLU module per call site: ``relu1`` after ``bn1``, ``relu`` after
    the sum.

    Still a ``BasicBlock`` (Zennit's ResNet canonizer recognises it). Same function as the original.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ExplainableBottleneck(Bottleneck):
    """``Bottleneck`` with ``relu1``, ``relu2`` after ``bn1``, ``bn2`` and ``relu`` after the
    sum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class HeadlessBottleneck(nn.Module):
    """The last ResNet-50 block after document 003's surgery: ``Bottleneck`` without ``bn3`` and
    without the ReLU after the residual sum, so the convolutional part ends in ``conv3 + identity``.

    Deliberately not a ``Bottleneck`` subclass: Zennit's ResNet canonizer would re-insert the
    removed ReLU. Activations are separate modules (``relu1``, ``relu2``), none in place.
    """

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu1 = block.conv1, block.bn1, nn.ReLU()
        self.conv2, self.bn2, self.relu2 = block.conv2, block.bn2, nn.ReLU()
        self.conv3 = block.conv3
        self.downsample = block.downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.conv3(out) + identity


def _unshared_block(block: nn.Module) -> nn.Module:
    """Rebuild a torchvision residual block with one activation module per call site."""
    if isinstance(block, Bottleneck):
        cls, order = ExplainableBottleneck, ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2",
                                             "conv3", "bn3", "downsample", "relu")
    else:
        cls, order = ExplainableBasicBlock, ("conv1", "bn1", "relu1", "conv2", "bn2",
                                             "downsample", "relu")
    new = cls.__new__(cls)
    new.__dict__.update(block.__dict__)
    modules = dict(block._modules)
    relu = modules["relu"]
    for name in ("relu1", "relu2", "relu"):
        modules[name] = copy.deepcopy(relu)
    new._modules = OrderedDict((name, modules.get(name)) for name in order if name in modules)
    return new


def _replace_modules(model: nn.Module) -> None:
    """In place: unshare residual blocks, copy modules registered twice, turn off ``inplace``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in (BasicBlock, Bottleneck):
                setattr(parent, name, _unshared_block(child))
    seen: set[int] = set()
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):  # named_children() hides duplicates
            if child is None:
                continue
            if id(child) in seen and not any(True for _ in child.parameters()):
                child = copy.deepcopy(child)  # one activation object registered under two names
                setattr(parent, name, child)
            seen.add(id(child))
    for module in model.modules():
        if isinstance(module, _INPLACE_ACTIVATIONS) and getattr(module, "inplace", False):
            module.inplace = False


def reused_modules(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of leaf modules called more than once in ``model(x)`` (what DeepLift cannot handle)."""
    calls: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if not any(True for _ in module.children()):
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return sorted(name for name, n in calls.items() if n > 1)


def example_input(model: nn.Module, batch: int = 1) -> torch.Tensor:
    """A zero batch ``[batch, in_channels, input_size, input_size]`` for a ``build`` model."""
    spec = spec_of(model)
    param = next(model.parameters())
    return torch.zeros(batch, spec.in_channels, spec.input_size, spec.input_size,
                       device=param.device, dtype=param.dtype)


def make_explainable(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that attribution methods can handle; identical outputs.

    Every activation with ``inplace=True`` becomes non-in-place; torchvision ``BasicBlock`` and
    ``Bottleneck`` become ``ExplainableBasicBlock``/``ExplainableBottleneck`` whose three call sites
    of ``self.relu`` use separate ReLU modules; an activation object registered under two names is
    copied. For a ``build`` model the result is checked with one forward pass: a module that is
    still called twice (custom code this function cannot rewrite) raises ``ValueError``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    new = copy.deepcopy(model)
    _replace_modules(new)
    spec = getattr(new, "salbench_spec", None)
    if isinstance(spec, ModelSpec):
        new.salbench_spec = spec.model_copy(update={"explainable": True})
        still = reused_modules(new, example_input(new))
        if still:
            raise ValueError(f"make_explainable could not unshare modules called twice: {still}")
    return new


def _trim_tail(model: nn.Module, arch: str) -> None:
    """Remove the trailing non-convolutional layers of the convolutional part (document 003, 4.2).

    VGG/AlexNet: the last ReLU and MaxPool2d of ``features``, and on VGG-BN the BatchNorm2d
    before them, so the part ends in its last Conv2d as the document requires (its ResNet rows
    remove the final BatchNorm2d too). ResNet-18/34 (``BasicBlock``): the last block's final
    BatchNorm2d (``bn2``; the ReLU after the residual sum stays, as the document lists only the
    BatchNorm). ResNet-50 (``Bottleneck``): the last block's ``bn3`` and the ReLU after the sum.
    """
    if hasattr(model, "features"):
        feats = model.features
        # Slicing keeps the indices (torchvision names stay valid, "features.19-34").
        if not isinstance(feats[-1], (nn.MaxPool2d, nn.Identity)) or not isinstance(
                feats[-2], _INPLACE_ACTIVATIONS):
            raise ValueError("the convolutional part does not end in activation + pooling; "
                             "was the model trimmed already?")
        model.features = feats[:-3] if isinstance(feats[-3], nn.BatchNorm2d) else feats[:-2]
        return
    last = model.layer4[-1]
    if isinstance(last, Bottleneck):
        model.layer4[-1] = HeadlessBottleneck(last)
    elif isinstance(last, BasicBlock):
        last.bn2 = nn.Identity()
    else:
        raise TypeError(f"cannot trim a ResNet whose last block is {type(last).__name__}")


def _feature_shape(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of the convolutional part's output for the model's input size."""
    x = example_input(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = model.grey_to_rgb(x)
            if hasattr(model, "features"):
                out = model.features(x)
            else:
                out = model.maxpool(model.relu(model.bn1(model.conv1(x))))
                for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
                    out = layer(out)
    finally:
        model.train(was_training)
    return tuple(out.shape[1:])


def _set_head(model: nn.Module, pool: nn.Module, in_features: int, num_classes: int) -> None:
    fc = nn.Linear(in_features, num_classes)
    fc.to(next(model.parameters()).device)
    if hasattr(model, "features"):
        model.avgpool, model.classifier = pool, fc
    else:
        model.avgpool, model.fc = pool, fc


def _surgery(model: nn.Module, head: str) -> nn.Module:
    spec = spec_of(model)
    if spec.head != "classifier":
        raise ValueError(f"model already has the {spec.head!r} head; surgery applies to a model "
                         "fresh from build")
    new = copy.deepcopy(model)
    _trim_tail(new, spec.arch)
    c, h, w = _feature_shape(new)
    if head == "conv_flatten_fc":
        _set_head(new, nn.Identity(), c * h * w, spec.num_classes)
    else:
        _set_head(new, nn.AdaptiveAvgPool2d((1, 1)), c, spec.num_classes)
    new.salbench_spec = spec.model_copy(update={"head": head})
    if spec.explainable:
        _replace_modules(new)
    return new


def to_conv_flatten_fc(model: nn.Module) -> nn.Module:
    """A copy with the *Conv - Flatten - Class scores* structure (document 003, section 4.2).

    The convolutional part loses its trailing layers (see ``_trim_tail``: VGG the last ReLU and
    MaxPool2d, VGG-BN the last BatchNorm2d, ReLU and MaxPool2d, ResNet-18/34 the last BatchNorm2d,
    ResNet-50 the last BatchNorm2d and ReLU); the average pooling becomes the identity (the
    forward's ``torch.flatten`` is the Flatten) and the classifier is one new
    ``Linear(C * H * W, num_classes)`` for the model's input size. The kept convolutional weights
    are shared values (copied), so the features up to the trimmed tail are exactly the original's.
    Applies to every zoo architecture (the document uses VGG-19, ResNet-34 and ResNet-50).
    """
    return _surgery(model, "conv_flatten_fc")


def to_gap_fc(model: nn.Module) -> nn.Module:
    """A copy with the CAM structure *Conv - GAP - Class scores* (document 003, section 2.1).

    Same trimmed convolutional part as ``to_conv_flatten_fc``, then global average pooling and one
    new ``Linear(C, num_classes)``; with this head Grad-CAM equals CAM (document 003, table 1).
    """
    return _surgery(model, "gap_fc")


def build_spec(spec: ModelSpec, load_weights: bool = True) -> nn.Module:
    """The model ``spec`` describes: ``build`` (with ``spec.weights`` when ``load_weights``; a
    checkpoint loads its own), its ``added_conv_layers``, the head surgery of ``spec.head``, then
    ``make_explainable`` if ``spec.explainable``. ``num_classes``, ``in_channels`` and
    ``input_size`` must be set."""
    missing = [k for k in ("num_classes", "in_channels", "input_size") if getattr(spec, k) is None]
    if missing:
        raise ValueError(f"model spec needs {missing} to build (ModelSpec.for_data fills them)")
    model = build(spec.arch, spec.num_classes, spec.in_channels, spec.input_size, spec.width,
                  weights=spec.weights if load_weights else None)
    if spec.added_conv_layers:
        model = add_conv_layers(model, spec.added_conv_layers)
    if spec.head == "conv_flatten_fc":
        model = to_conv_flatten_fc(model)
    elif spec.head == "gap_fc":
        model = to_gap_fc(model)
    if spec.explainable:
        model = make_explainable(model)
    model.salbench_spec = spec
    return model


class ConstantPad(nn.Module):
    """Pad every channel of ``[B, C, H, W]`` by ``padding`` pixels with its own constant
    ``values[c]``."""

    def __init__(self, padding: int, values: torch.Tensor) -> None:
        super().__init__()
        self.padding = padding
        self.register_buffer("values", values.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.padding
        return nn.functional.pad(x - self.values, (p, p, p, p)) + self.values


def fold_normalisation(model: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> nn.Module:
    """Fold ``(x − mean) / std`` into the first convolution of a VGG (in place): the model then
    takes pixel-space inputs in [0, 1] and computes exactly what the original did on normalised
    ones (document 002 explains torchvision's ImageNet VGG-16 with z^B bounds and a gray value in
    pixel space). The convolution's zero padding (0 in normalised space = ``mean`` in pixel
    space) becomes a :class:`ConstantPad` with ``mean``; the order of the conv/linear layers, and
    so every layer index of an LRP composite, is unchanged."""
    conv = model.features[0]
    if not isinstance(conv, nn.Conv2d) or conv.padding[0] != conv.padding[1]:
        raise ValueError("fold_normalisation needs a VGG whose features[0] is a Conv2d with "
                         "equal padding")
    mean_t = torch.tensor(mean, dtype=conv.weight.dtype, device=conv.weight.device)
    std_t = torch.tensor(std, dtype=conv.weight.dtype, device=conv.weight.device).view(1, -1, 1, 1)
    with torch.no_grad():
        conv.bias -= (conv.weight * mean_t.view(1, -1, 1, 1) / std_t).sum((1, 2, 3))
        conv.weight /= std_t
    pad = conv.padding[0]
    conv.padding = (0, 0)
    model.features[0] = nn.Sequential(ConstantPad(pad, mean_t), conv)
    return model


def add_conv_layers(model: nn.Module, added: int) -> nn.Module:
    """A copy of an AlexNet (or VGG) from ``build`` with ``added`` extra 3×3 conv + ReLU layers
    after its last convolution (document 001, section 4.1 and appendix fig. 1: AlexNet with 1…8
    added convolutional layers). The document does not say where the layers go; salbench inserts
    them after the last convolution's ReLU, before the last max-pooling, keeping the channel count
    (padding 1), so the classifier is unchanged. On VGG-BN every added layer is conv, BN, ReLU like
    the others. New convolutions get Kaiming-normal weights (fan-out, ReLU) and zero biases, new
    batch norms weight 1 and bias 0: torchvision's initialisation. ``added = 0`` returns an
    unchanged copy. The spec's ``added_conv_layers`` records the layers, so a checkpoint rebuilds
    the model."""
    if not isinstance(added, int) or isinstance(added, bool) or added < 0:
        raise ValueError(f"added must be a non-negative int (conv layers to add), got {added!r}")
    spec = spec_of(model)
    if not isinstance(getattr(model, "features", None), nn.Sequential):
        raise TypeError(f"add_conv_layers needs a model with a convolutional `features` "
                         f"sequence (AlexNet, VGG), got {spec.arch!r}")
    if spec.head != "classifier":
        raise ValueError("add conv layers before the head surgery (the model has the "
                         f"{spec.head!r} head)")
    new = copy.deepcopy(model)
    layers = list(new.features)
    last_conv = max(i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d))
    batch_norm = last_conv + 1 < len(layers) and isinstance(layers[last_conv + 1], nn.BatchNorm2d)
    activation = last_conv + 1 + batch_norm
    if activation == len(layers) or not isinstance(layers[activation], _INPLACE_ACTIVATIONS):
        raise ValueError("the last convolution of `features` is not followed by an activation")
    conv = layers[last_conv]
    extra = []
    for _ in range(added):
        new_conv = nn.Conv2d(conv.out_channels, conv.out_channels, kernel_size=3, padding=1)
        nn.init.kaiming_normal_(new_conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(new_conv.bias)
        norm = [nn.BatchNorm2d(conv.out_channels)] if batch_norm else []
        extra += [m.to(conv.weight.device) for m in (new_conv, *norm)] + [nn.ReLU()]
    new.features = nn.Sequential(*layers[:activation + 1], *extra, *layers[activation + 1:])
    new.salbench_spec = spec.model_copy(
        update={"added_conv_layers": spec.added_conv_layers + added})
    return new


def randomise_biases(model: nn.Module, std: float, seed: int) -> None:
    """In place: draw every ``Conv2d``, ``Linear`` and ``BatchNorm2d`` bias from N(0, std²)
    (generator seeded by ``seed``). An untrained zoo model has zero biases, so a ReLU network is
    positively homogeneous and gradient ⊙ activation sums to the logit at every layer (Euler's
    theorem); random biases break that (document 003's Dense row of table 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            bias = getattr(module, "bias", None)
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and bias is not None:
                bias.copy_((torch.randn(bias.shape, generator=g) * std).to(bias.device, bias.dtype))
