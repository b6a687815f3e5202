"""The experiment as Python: the grid a config implies, the output layout and the start-up checks.

``workflow/rules/common.smk`` is a thin adapter over this package; everything here is importable
without torch and testable without Snakemake.
"""
