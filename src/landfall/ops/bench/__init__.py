"""`landfall bench` / `make bench`: event latency, orchestration overhead and scale, measured on a fresh
embedded stack of its own (own state folder and ports, torn down at the end), beside the classic
S3KeySensor DAG that users migrate from. Figures are printed as a table and written to
`bench/results.json`; nothing here asserts a timing.

Phases, in order, on the same stack (`phases.py`):
1. `dag_parse_s`: every DAG file imported in a fresh interpreter (landfall.ops.dagparse).
2. One good day landed on the quiet stack: `landing_to_champion_s`, the compute of its tasks and the
   overhead ratio.
3. `event_to_run_start_s` over N single landings, each waiting for its run before the next.
4. Bursts (50 and 1,000 files by default): PUT as fast as S3 takes them; lost, duplicates, failed runs,
   time until every file is recorded.
5. A decompression bomb: the peak RSS of the task that refuses it, beside a full decode's.
6. The classic DAGs: the sensor waits, the file lands at stratified points of the poke cycle.
Peak RSS of every stack process (LocalExecutor workers and task processes included) is sampled
throughout (`rss.py`); `report.py` prints the table, `runner.py` runs it all. A phase that fails is
recorded under `failed_phases` in the results (and as a FAILED row of the table) with its error, and the
phases after it still run.
"""

from landfall.ops.bench.phases import RESULTS_PATH, BenchOptions
from landfall.ops.bench.runner import run_bench

__all__ = ["RESULTS_PATH", "BenchOptions", "run_bench"]
