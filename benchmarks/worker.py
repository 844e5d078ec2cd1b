"""Worker process of the benchmark suite: ``python benchmarks/worker.py TASK '<json args>'``.

Runs one measurement in a fresh process (clean heap, so its peak RSS is its own) and prints its result as one
JSON line prefixed with ``BENCH_RESULT`` (see :func:`common.run_worker`).
"""

from __future__ import annotations

import json
import sys

from bench_train import train_worker
from common import emit

TASKS = {"train": train_worker}


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in TASKS:
        raise SystemExit(f"usage: worker.py {{{','.join(TASKS)}}} '<json args>', got {argv}")
    emit(TASKS[argv[0]](json.loads(argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
