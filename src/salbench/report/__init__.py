"""The run report: a self-contained HTML page with a section per study, the leaderboard, metric
agreement and a per-sample gallery (see ``docs/report.md``).

A study builds its part from these pieces::

    from salbench.report import Figure, Section, Table, figures

    def report_section(run_dir) -> Section:
        fig = figures.box_plot(frame, x="degree", y="precision", hue="corpus")
        return Section("Pre-training", "What this study asks ...",
                       figures=[Figure(fig, "Explanation performance per degree.")],
                       tables=[Table(accuracy_matched, "Accuracy-matched models.")])

and saves samples for the gallery with :func:`save_gallery_item`. The report stage imports no
study: ``salbench report`` asks the studies for their sections and passes them to
:func:`render_report`.
"""

from salbench.report import figures
from salbench.report.gallery import GalleryItem, load_gallery_item, save_gallery_item
from salbench.report.html import render_page, render_report
from salbench.report.sections import Figure, Section, Table, results_sections

__all__ = ["Figure", "GalleryItem", "Section", "Table", "figures", "load_gallery_item",
           "render_page", "render_report", "results_sections", "save_gallery_item"]
