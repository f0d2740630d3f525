"""The five studies of the source documents and the quickstart demo, each a registered Study."""

from salbench.studies import (
    cam_faithfulness,  # noqa: F401 - registers the study
    cells,  # noqa: F401 - importing a study module registers it
    gad,  # noqa: F401 - importing a study module registers it
    lrp_grid,  # noqa: F401 - importing a study module registers it
    pretraining,  # noqa: F401 - importing a study module registers it
    quickstart,  # noqa: F401 - importing a study module registers it
)
from salbench.studies.base import (
    Stage,
    Study,
    all_studies,
    get_study,
    report_sections,
    run_findings,
    run_study,
)

__all__ = ["Stage", "Study", "all_studies", "get_study", "report_sections", "run_findings",
           "run_study"]
