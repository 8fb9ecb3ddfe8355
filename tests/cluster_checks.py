"""Run under torchrun (2 ranks) by tests/test_cluster.py: rank 0's solo work lasting longer than dist.timeout
does not fail the others, who wait for it as long as it answers; then a lock-step collective still works. Last,
rank 1 stays away from a collective while it answers (as a rank stuck in I/O): rank 0's collective fails after
dist.timeout, and the diagnosis names rank 1 and where it is."""
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
    start = time.monotonic()
    try:
        distributed.all_reduce_sum(torch.ones(1))
    except RuntimeError as e:
        record.append({"stuck": str(cluster.diagnose(e)), "after": time.monotonic() - start})
    with open(sys.argv[1], "w") as f:
        json.dump(record, f)
else:
    time.sleep(4 * TIMEOUT)  # alive, answering, but not in the collective rank 0 waits in
