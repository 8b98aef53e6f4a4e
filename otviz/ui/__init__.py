"""Panel components (Viewers) and per-session state of the otviz dashboards."""
