"""Entry points: one grid cell (``experiments.run``) and the benchmark (``experiments.bench``)."""
