"""Reports of a fit: mask sharing tables and plots."""

from lt4rec.report.sharing import format_sharing_table, sharing_report

__all__ = ["format_sharing_table", "sharing_report"]
