"""`python -m infra.bench` (`make bench`): throughput, latency and memory of the local stack.

It starts its own Redis and gateway (`python -m infra.local`) on free ports, drives them with
wrk (127.0.0.1 only, every run bounded in time), prints a table, writes the figures as JSON
(infra/bench/results/latest.json) and the table as markdown into infra/bench/RESULTS.md;
a --quick run writes them only where --json or --markdown says.
"""
