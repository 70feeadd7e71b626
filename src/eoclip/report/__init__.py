"""The report: the paper's figures (1, 2, 4, 5, 6), retrieval metrics and a summary table."""

from eoclip.report.figures import (
    fig_accuracy,
    fig_aois,
    fig_examples,
    fig_label_quantiles,
    fig_retrieval,
)
from eoclip.report.html import ReportConfig, ReportInputs, build_report, find_inputs
from eoclip.report.tables import summary_table

__all__ = [
    "ReportConfig",
    "ReportInputs",
    "build_report",
    "fig_accuracy",
    "fig_aois",
    "fig_examples",
    "fig_label_quantiles",
    "fig_retrieval",
    "find_inputs",
    "summary_table",
]
