"""Analysis of finished runs: statistics, diversity, plots, reports, comparisons and sweeps.

Modules (see docs/evaluation.md):

- `stats`: accuracy with SE and a bootstrap interval, paired tests, aggregation across seeds.
- `diversity`: consensus, embedding dissimilarity and likelihood-based diversity of agents.
- `plots`: accuracy and diversity per iteration as PNG (needs the `report` extra: matplotlib).
- `report`: the metrics document (`MetricsDocument`), report.md and the terminal table.
- `compare`: `mafine report RUN [RUN...]`, runs side by side, seeds aggregated.
- `sweep`: `mafine sweep CONFIG --grid key=v1,v2`, a grid of runs and their comparison.

Importing this package imports none of numpy-heavy extras (matplotlib, sentence-transformers).
"""
