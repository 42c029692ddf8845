"""Run reports: stage tables, markdown, HTML and Prefect artifacts."""
