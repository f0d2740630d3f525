"""Study ``gad`` (document 004, sections 4-6): does Gradient Artificial Distancing shrink the
important region of gradient maps, and is what it keeps more influential per pixel?

One class pair of one dataset (default: CCell vs RCell of the embedded cells data, a two-class
RGB task standing in for the document's cats vs dogs); VGG-16 and ResNet-18 trained on it;
support regressions for α = 0, 2, 4, 6, 8 (:func:`salbench.explain.fit_gad`); five base methods
explained for both outputs of the pair, with and without GAD; the complexity ratio RC and the
occlusion sensitivity RS of :mod:`salbench.metrics.regions` (tables 1-2); the least activated
images' maps and convex hulls (figures 5-6); the findings of tables 1-2 (``findings.py``).
"""

from salbench.studies.base import Study, register
from salbench.studies.gad.config import PRESETS, GADConfig
from salbench.studies.gad.findings import findings as run_findings
from salbench.studies.gad.grid import NAME, stages
from salbench.studies.gad.report import report_section

STUDY = register(Study(
    NAME, "document 004: GAD support regressions, complexity ratio RC and occlusion sensitivity "
          "RS of five gradient methods on one class pair",
    GADConfig, PRESETS, stages, report_section, findings=run_findings))
