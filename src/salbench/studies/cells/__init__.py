"""Synthetic cells: how well eight saliency methods find the cells' ground truth (document 001).

The ten-class cell data (section 3.1) trains AlexNet, VGG-16 and ResNet-34 first in continuous
mode (the base model), then ``branches`` times in regular-evaluation mode from that base (section
3.2, table 1). Each branch explains the evaluation samples with the eight Captum methods on the
**predicted** class (section 3.3) and scores them with the soft five-band scores, standard and
clamped (sections 3.3, 4.1). Optionally, AlexNet with k added convolutional layers is trained and
scored the same way (section 4.1, appendix fig. 1). See ``docs/studies/cells.md``.
"""

from salbench.studies.base import Study, register
from salbench.studies.cells import findings
from salbench.studies.cells.config import PRESETS, CellsConfig
from salbench.studies.cells.grid import NAME, stages
from salbench.studies.cells.report import report_section

STUDY = register(Study(NAME, "document 001: eight saliency methods on synthetic cells, soft "
                             "five-band scores", CellsConfig, PRESETS, stages, report_section,
                       findings=findings.findings))
