"""Fault injection against the real platform, and the reconciliation that judges each run.

``reliability/faults.py`` is the command line; RELIABILITY.md holds the figures of the runs.
"""
