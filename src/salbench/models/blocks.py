"""Named blocks of every zoo architecture and freezing by fine-tuning degree.

Blocks, from the input to the output side (document 000, section 2.3 and appendix D: "each degree
of fine-tuning includes the convolutional layers between two consecutive max-pooling layers"):

- VGG-16/19 with or without batch norm: ``block1`` ... ``block5``, the conv groups each ending in
  its max-pool (VGG-16: ``features[0:5]``, ``[5:10]``, ``[10:17]``, ``[17:24]``, ``[24:31]``;
  VGG-16-BN, whose every conv is conv, BN, ReLU: ``[0:7]``, ``[7:14]``, ``[14:24]``, ``[24:34]``,
  ``[34:44]``, each batch norm in the block of its convolution);
- ResNet-18/34/50: ``stem`` (conv1, bn1, relu, maxpool), ``layer1`` ... ``layer4``;
- AlexNet: ``block1`` ``features[0:3]``, ``block2`` ``[3:6]``, ``block3`` ``[6:13]``.

VGG and AlexNet blocks are read off ``features``: a block ends at each max-pool (or the
``nn.Identity`` that replaced one for a small input); what follows the last one (after the head
surgery removed it) is the last block, and layers added by ``add_conv_layers`` join the last block.
The head (``classifier`` for VGG/AlexNet, ``fc`` for ResNet) is always trained.

Fine-tuning degrees ``1conv`` ... ``4conv``, ``all`` (or an int k) count blocks **from the output
side** by default: ``1conv`` trains the last block and the head, ``all`` trains everything
(NOTES.md: the public code slices VGG-16 ``features[25:]`` for 1conv; the document's results fit
this direction). ``direction="input"`` counts from the input side instead (a literal reading of
"fine-tuning up to the first max-pooling layer"). ``slicing="public-code"`` reproduces the public
code's off-by-one: the trained range starts one module after the first trained block's first
convolution, so that convolution stays frozen (VGG-16: ``features[25:]``, ``[18:]``, ``[11:]``,
``[6:]``; VGG-16-BN: ``[35:]``, ``[25:]``, ``[15:]``, ``[8:]``, so that convolution's batch norm
trains; VGG and AlexNet only).
"""

from __future__ import annotations

from torch import nn

from salbench.models.zoo import spec_of

DEGREES = ("1conv", "2conv", "3conv", "4conv", "all")
DIRECTIONS = ("output", "input")
SLICINGS = ("block", "public-code")


def _feature_blocks(features: nn.Sequential) -> list[list[str]]:
    """Child names of ``features`` grouped into blocks, each ending at a max-pool or the
    ``nn.Identity`` that replaced one (VGG/AlexNet)."""
    groups: list[list[str]] = [[]]
    for name, module in features.named_children():
        groups[-1].append(name)
        if isinstance(module, (nn.MaxPool2d, nn.Identity)):
            groups.append([])
    return [g for g in groups if g]


def blocks(model: nn.Module) -> dict[str, list[str]]:
    """Ordered ``{block name: [module names]}`` from input to output for a ``build`` model.

    Module names are ``model.named_modules()`` names (``"features.24"``, ``"layer4"``); modules
    removed by surgery are left out.
    """
    spec = spec_of(model)
    if spec.arch.startswith("resnet"):
        return {"stem": ["conv1", "bn1", "relu", "maxpool"], "layer1": ["layer1"],
                "layer2": ["layer2"], "layer3": ["layer3"], "layer4": ["layer4"]}
    return {f"block{k}": [f"features.{name}" for name in group]
            for k, group in enumerate(_feature_blocks(model.features), start=1)}


def head(model: nn.Module) -> list[str]:
    """Module names of the classifier head (always trained): ``["classifier"]`` or ``["fc"]``."""
    return ["fc"] if spec_of(model).arch.startswith("resnet") else ["classifier"]


def degree_to_blocks(degree: str | int, n_blocks: int) -> int:
    """Number of trained blocks for a degree: ``"3conv"`` or ``3`` -> 3; ``"all"`` ->
    ``n_blocks``."""
    if degree == "all":
        return n_blocks
    if isinstance(degree, str) and degree.endswith("conv") and degree[:-4].isdigit():
        k = int(degree[:-4])
    elif isinstance(degree, int) and not isinstance(degree, bool):
        k = degree
    else:
        raise ValueError(f"degree must be one of {DEGREES} or an int number of blocks, "
                         f"got {degree!r}")
    if not 0 <= k <= n_blocks:
        raise ValueError(f"degree {degree!r} asks for {k} blocks; this model has {n_blocks}")
    return k


def trainable_modules(model: nn.Module, degree: str | int, direction: str = "output",
                      slicing: str = "block") -> list[str]:
    """Module names trained at ``degree`` (see the module docstring), head included."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if slicing not in SLICINGS:
        raise ValueError(f"slicing must be one of {SLICINGS}, got {slicing!r}")
    named = blocks(model)
    k = degree_to_blocks(degree, len(named))
    if k == len(named):
        return [name for name, _ in model.named_children()]
    names = list(named)
    chosen = names[len(names) - k:] if direction == "output" else names[:k]
    modules = [m for b in chosen for m in named[b]]
    if slicing == "public-code" and k > 0:
        if spec_of(model).arch.startswith("resnet"):
            raise ValueError("slicing='public-code' reproduces the VGG-16 code's index slicing; "
                             "it applies to VGG and AlexNet only")
        first = named[chosen[0]][0]  # the first trained block's first convolution stays frozen
        modules = [m for m in modules if m != first]
    return modules + head(model)


def set_trainable(model: nn.Module, modules: list[str]) -> nn.Module:
    """Freeze every parameter except those of the named modules (``requires_grad``); in place.

    ``modules`` are names from ``model.named_modules()`` (``"layer3"``, ``"features.19"``), e.g.
    document 003 table 3's "layer3-layer4". Returns ``model``.
    """
    known = dict(model.named_modules())
    unknown = [m for m in modules if m not in known]
    if unknown:
        raise ValueError(f"modules {unknown} are not in the model; names look like "
                         f"{list(known)[1:6]}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in modules:
        for p in known[name].parameters():
            p.requires_grad_(True)
    return model


def freeze_for_degree(model: nn.Module, degree: str | int, direction: str = "output",
                      slicing: str = "block") -> nn.Module:
    """Freeze ``model`` for fine-tuning degree ``degree`` (document 000, section 2.3); in place.

    ``degree``: ``"1conv"`` ... ``"4conv"``, ``"all"`` or an int number of blocks. Default: the k
    blocks nearest the output plus the head are trainable, all else frozen. Returns ``model``.
    """
    return set_trainable(model, trainable_modules(model, degree, direction, slicing))


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters with ``requires_grad=True``."""
    return [name for name, p in model.named_parameters() if p.requires_grad]
