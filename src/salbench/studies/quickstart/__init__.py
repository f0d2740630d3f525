"""The quickstart demo: both ground-truth datasets, two small models, the documents' methods
and metrics.

``salbench quickstart`` runs it at the ``tiny`` preset (minutes on a laptop CPU). It is a smoke
test of the whole pipeline with real numbers, not a study of a document: the leaderboard it
writes compares the documents' attribution methods on MRI lesions (binary masks) and synthetic
cells (five-band ground truth), each explained on a small ResNet-18 trained here.
"""

from salbench.studies.base import Study, register
from salbench.studies.quickstart.config import PRESETS, QuickstartConfig
from salbench.studies.quickstart.grid import NAME, stages
from salbench.studies.quickstart.report import report_section

STUDY = register(Study(NAME, "end-to-end demo: both datasets, every method, every metric",
                       QuickstartConfig, PRESETS, stages, report_section))
