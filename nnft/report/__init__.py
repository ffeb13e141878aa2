"""Reports: console tables, z summaries and plots of measured correlators.

``tables`` (console tables, z summaries), ``plots`` (correlator and width-scan
plots), ``mcmc`` (cross-check tables and plots, diagnostics), ``training``
(training over time). Reports read results; they compute nothing of their own
beyond z-scores and never touch cards.
"""

from nnft.report.mcmc import plot_crosschecks, print_mcmc
from nnft.report.plots import (
    plot_correlators,
    plot_g2,
    plot_g4c,
    plot_width_scan,
    pyplot,
    save_figure,
)
from nnft.report.tables import (
    correlator_table,
    distinct_entries,
    fmt_point,
    print_report,
    print_width_scan,
    tracked_entries,
    z_scores,
    z_summaries,
    z_summary,
)
from nnft.report.training import plot_training, print_training

__all__ = [
    "correlator_table",
    "distinct_entries",
    "fmt_point",
    "plot_correlators",
    "plot_crosschecks",
    "plot_g2",
    "plot_g4c",
    "plot_training",
    "plot_width_scan",
    "print_mcmc",
    "print_report",
    "print_training",
    "print_width_scan",
    "pyplot",
    "save_figure",
    "tracked_entries",
    "z_scores",
    "z_summaries",
    "z_summary",
]
