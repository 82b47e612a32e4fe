"""The KPI benchmark: `python3 -m bench.kpi_bench --help`. Not part of the installed package."""
