"""Results -> pandas -> paper-style tables and figures.

Reads result records only (``result.json`` files or W&B runs); never imports the training
package. Entry point: ``python -m analysis {tables,plots,report} --runs DIR [DIR ...]``.
"""
