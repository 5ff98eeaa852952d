"""The benchmark report: tables (means with 95% CIs, findings as paired verdicts), figures
(PNG) and the HTML/Markdown writer."""

from unlearnkit.report.findings import findings, noise_warnings
from unlearnkit.report.tables import ci_pivot, cost_table, summary
from unlearnkit.report.writer import write_report

__all__ = ["ci_pivot", "cost_table", "findings", "noise_warnings", "summary", "write_report"]
