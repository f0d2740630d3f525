"""The five studies of the source documents and the quickstart demo, each a registered Study."""

from salbench.studies import (  # noqa: F401 - importing a study module registers it
    cam_faithfulness,
    cells,
    gad,
    lrp_grid,
    pretraining,
    quickstart,
)
from salbench.studies.base import Stage, Study, all_studies, get_study, run_study

__all__ = ["Stage", "Study", "all_studies", "get_study", "run_study"]
