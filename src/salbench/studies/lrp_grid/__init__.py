"""LRP hyperparameter grid: which γ/ε a composite should use, judged by region perturbation
(document 002, sections 2.1.5, 2.2, 3 and 4.1; tables 2.3, 2.4, 4.1–4.3).

A VGG-16 is explained with two layer-index composites whose two free hyperparameters run over a
grid (document: {0, 10⁻⁴ … 10⁰}, 16 values, 256 combinations per composite):

- decreasing-γ (table 4.2): z^B on the pixels, γ = 0.5 on VGG-16 modules 2–10, γ₁ on 11–17,
  γ₂ on 18–24, γ = 0 from 25 on (layer indices 0, 1–4, 5–7, 8–10, 11–); the text and public
  code's γ₁ on modules 1–17 with ``decreasing_gamma_layers: text``;
- tutorial (table 4.3): z^B on the pixels, γ on modules 1–16, ε on 17–30, LRP-0 from 31 on
  (layer indices 0, 1–6, 7–12, 13–);

with the denominator stabiliser (vanilla, zennit, tutorial; section 2.1.5) as a third factor.
Each map is scored by region perturbation (section 2.2; NOTES.md: 8×8 patches, Telea
inpainting, k² patches flipped after step k, repeated flipping, the last step all gray) in the
MoRF, LRF and random orders, and summarised by the area under the perturbation curve (AUC; lower
is better for MoRF, higher for LRF). The explained class is the ground-truth class (section 3).

By default the embedded synthetic-cell data replace ImageNet and a VGG-16 (``arch``: ``vgg16``,
or ``vgg16_bn`` whose batch norms Zennit's canonizer merges into the convolutions) is trained on
them and must pass an accuracy gate before its maps count; ``folder`` reads a user's
ImageNet-style folder (``root/<class>/<image>``) and ``weights`` loads torchvision's ImageNet
VGG-16 (the document's model), its input normalisation folded into the first convolution
(:func:`salbench.models.surgery.fold_normalisation`) so that images, the z^B bounds and the gray
value stay in pixel space [0, 1]. ``findings`` tests the document's claims on the result tables.
"""

from salbench.studies.base import Study, register
from salbench.studies.lrp_grid import findings
from salbench.studies.lrp_grid.config import PRESETS, LrpGridConfig
from salbench.studies.lrp_grid.grid import NAME, stages
from salbench.studies.lrp_grid.report import report_section

STUDY = register(Study(NAME, "document 002: LRP composite hyperparameters over a grid, judged "
                             "by region perturbation AUC", LrpGridConfig, PRESETS, stages,
                       report_section, findings=findings.findings))
