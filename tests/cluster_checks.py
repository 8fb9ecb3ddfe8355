"""Run under torchrun (2 ranks) by tests/test_cluster.py: rank 0's solo work lasting longer than dist.timeout
does not fail the others, who wait for it as long as it answers; then a lock-step collective still works."""
import json
import sys
import time

import torch

from condgan import cluster, distributed

TIMEOUT = 2  # seconds: dist.timeout

distributed.init_from_env("cpu", TIMEOUT)
cluster.start(TIMEOUT)
start = time.monotonic()
value = cluster.from_main(lambda: time.sleep(3 * TIMEOUT) or "done on rank 0")
waited = time.monotonic() - start
total = distributed.all_reduce_sum(torch.ones(1)).item()
record = distributed.gather_objects({"value": value, "waited": waited, "sum": total})
if distributed.world().is_main:
    with open(sys.argv[1], "w") as f:
        json.dump(record, f)
cluster.stop()
distributed.shutdown()
