"""Rendering: figures and the HTML report (matplotlib is imported only when drawing)."""

from .figures import write_figures
from .html import summary_rows, write_report

__all__ = ["write_figures", "write_report", "summary_rows"]
