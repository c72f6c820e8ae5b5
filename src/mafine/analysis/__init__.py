"""Analysis of finished runs: statistics, diversity, the metrics document, plots, reports and
comparisons.

Modules (see docs/evaluation.md):

- `stats`: accuracy with SE and a bootstrap interval, paired tests, aggregation across seeds.
- `diversity`: consensus, embedding dissimilarity and likelihood-based diversity of agents.
- `metrics`: the metrics document (`MetricsDocument`, `load_metrics`).
- `plots`: accuracy and diversity per iteration as PNG (needs the `report` extra: matplotlib).
- `report`: report.md and the terminal table.
- `compare`: `mafine report RUN [RUN...]`, runs side by side, seeds aggregated.

Analysis takes what it needs as arguments: it never imports the config. Importing this package
imports none of the numpy-heavy extras (matplotlib, sentence-transformers).
"""
