"""The GPU claim: concurrent training processes get different devices; a dead process frees its device."""
import subprocess
import sys
import time

from deepmerge_da.training.gpu_alloc import claim_device

HOLD = """
import sys, time
from deepmerge_da.training.gpu_alloc import claim_device
print(claim_device(int(sys.argv[1]), sys.argv[2]), flush=True)
time.sleep(float(sys.argv[3]))
"""


def start(n, lock_dir, hold_s):
    return subprocess.Popen([sys.executable, "-c", HOLD, str(n), str(lock_dir), str(hold_s)],
                            stdout=subprocess.PIPE, text=True)


def test_concurrent_jobs_get_distinct_devices(tmp_path):
    procs = [start(3, tmp_path, 30) for _ in range(3)]
    try:
        claimed = sorted(int(p.stdout.readline()) for p in procs)
        assert claimed == [0, 1, 2]
        assert claim_device(3, tmp_path) == -1  # all held
        procs[0].kill()
        procs[0].wait()
        time.sleep(0.2)
        assert claim_device(3, tmp_path) in (0, 1, 2)  # the killed job's device is free again
    finally:
        for p in procs:
            p.kill()
            p.wait()
