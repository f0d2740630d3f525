"""Study ``pretraining`` (document 000): does within- or out-of-domain pre-training change how
well saliency methods find MRI lesions after fine-tuning?

``config`` (the config and presets), ``grid`` (the stages and the study's own jobs),
``analysis`` (pure functions of the result tables), ``findings`` (the document's claims tested on
them), ``report`` (the report section).
"""

from salbench.studies.base import Study, register
from salbench.studies.pretraining import findings
from salbench.studies.pretraining.config import PRESETS, PretrainingConfig
from salbench.studies.pretraining.grid import NAME, stages
from salbench.studies.pretraining.report import report_section

STUDY = register(Study(
    name=NAME,
    summary="document 000: within- vs out-of-domain pre-training, fine-tuning degrees and "
            "top-n precision of eight saliency methods on MRI lesions",
    config_class=PretrainingConfig,
    presets=PRESETS,
    stages=stages,
    report_section=report_section,
    findings=findings.findings,
))
