"""Grad-CAM vs HiResCAM: faithfulness in theory and by the metrics (document 003).

VGG-19, ResNet-34 and ResNet-50 are trained with two heads, *Conv – Flatten – Class scores*
(``head="conv_flatten_fc"``, section 4.2) and *Conv – GAP – Class scores* (``"gap_fc"``, the CAM
architecture, section 2.1.1), with the document's regime (training preset ``cam``: Adam,
class-weighted cross-entropy, early stopping on validation loss and the recall of the monitored
classes, section 4.2). Table 1 (section 3) is *measured* by the metric ``cam_identities``. Grad-CAM
and HiResCAM are scored with AOPC at four region sizes with uniform noise (section 4.3, table 5,
fig. 14), max-sensitivity over the radii of table 6 (section 4.4, fig. 15) and HAAS (section 4.5,
table 7); table 10 sums up, and figs. 16–18 plot balanced accuracy against each metric (4.6).

Data: the embedded ten-class synthetic cells by default (a multi-class problem, like CRC and
HAM10000); ``folder`` reads a user's CRC / HAM10000 / Covid-19 / BreakHis images instead.
Input range: salbench keeps images in [0, 1] and passes that range to the metrics (AOPC noise
U[0, 1], HAAS ``input_range``); max-sensitivity radii, given by the document on its [−1, 1] scale,
are multiplied by (high − low) / 2 so that a radius is the same fraction of the value range.
"""

from salbench.studies.base import Study, register
from salbench.studies.cam_faithfulness import findings
from salbench.studies.cam_faithfulness.config import PRESETS, CamFaithfulnessConfig
from salbench.studies.cam_faithfulness.grid import NAME, stages
from salbench.studies.cam_faithfulness.report import report_section

STUDY = register(Study(NAME, "Grad-CAM vs HiResCAM: measured table 1, AOPC, max-sensitivity, "
                       "HAAS on Conv–Flatten and GAP heads (document 003)",
                       CamFaithfulnessConfig, PRESETS, stages, report_section,
                       findings=findings.findings))
