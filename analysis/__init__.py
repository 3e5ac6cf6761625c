"""Results -> pandas -> paper-style tables and figures.

Reads result records (``result.json`` files or W&B runs) through ``ptuning.records``; never
imports the training stack. Entry point: ``python -m analysis {tables,plots,report} --runs DIR``.
"""
