"""Reports: the thesis's tables and figures beside its values, and a study's REPORT.md/.html."""
