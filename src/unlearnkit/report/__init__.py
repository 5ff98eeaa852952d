"""The benchmark report: tables (means with 95% CIs, findings as checks), figures
(PNG) and the HTML/Markdown writer."""

from unlearnkit.report.tables import Finding, ci_pivot, cost_table, findings, summary
from unlearnkit.report.writer import write_report

__all__ = ["Finding", "ci_pivot", "cost_table", "findings", "summary", "write_report"]
