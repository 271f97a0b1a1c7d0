"""Benchmarks behind `make bench` (`python -m bench`): not part of `make test`.

P1 latency through the local host vs a raw httpx call, P2 cold import, P3 paced bulk against a
rate-limited simulator, P4 memory after 1,000 vs 100,000 actions; beside P2, a whole cold start
(import, index, first call) as a report line. Servers run in their own
processes (`bench.servers`); load is generated from the benchmark process. Results go to
`bench/results.md`.
"""
