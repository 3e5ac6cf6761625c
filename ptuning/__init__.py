"""P-Tuning reproduction suite: methods, deep-prompt mechanism, heads, tasks, training."""
