"""asyncrepo's benchmarks: asyncrepo against the raw client doing the same work.

``python -m benchmarks`` runs every scenario at full size, prints a table and writes
``benchmarks/results/latest.json``; ``--smoke`` runs tiny sizes once (CI); ``--only csv,github``
selects scenarios; ``--runs N`` sets the runs per variant. See ``benchmarks/README.md``.
"""
