"""The resume scan alone: `batcher.state.ledger.replay` over a ledger, timed inside its own process.

    python bench/probe_replay.py LEDGER

Run as a child by the scale benchmark (which reads the process's peak RSS from os.wait4); prints
one JSON object: the replay's wall and CPU seconds, the lines folded and the keys per state.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from batcher.state.ledger import replay


def main(argv: list[str]) -> int:
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    result = replay(Path(argv[1]))
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    counts = {state.name.lower(): count for state, count in result.counts().items()}
    print(json.dumps({"replay_wall_s": wall, "replay_cpu_s": cpu, "lines": result.records,
                      "keys": len(result), "states": counts,
                      "corrupt": result.corrupt_count, "torn": result.torn_lines}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
