"""Analysis of sweep results: loading (schema v2), Pareto frontiers, scaling-law and
information-model fits, figures and reports. See docs/analysis.md."""
