"""``altlearn sweep``: many runs from one file, on this machine or on a Ray cluster (docs/sweeps.md).

Read in this order: sweep_file (the grammar), trials (expansion into validated specs and keys),
record (the MLflow parent run, continuing a sweep), jobs/worker/adapter (one trial where it runs),
engines (local processes, Ray), display (the live table), summary (the end), runner (all of it).
"""
