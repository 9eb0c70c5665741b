"""``python tests/_train_runner.py ARGS`` = ``python -m na_cuda.train ARGS`` on the fake digits of ``_fake_data``
(for subprocess and torchrun tests that must not depend on real data).

``NA_TEST_STALL_RANK1_S=S``: rank 1 sleeps S seconds in its second training step (a stopped rank, for the DDP
timeout test), killable by SIGTERM meanwhile."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fake_data import datasets  # noqa: E402

from na_cuda import train  # noqa: E402


def _stall_rank1(epoch, step, loss):
    if os.environ.get("RANK") == "1" and (epoch, step) == (0, 1):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(float(os.environ["NA_TEST_STALL_RANK1_S"]))
    return loss


if __name__ == "__main__":
    hook = _stall_rank1 if os.environ.get("NA_TEST_STALL_RANK1_S") else None
    sys.exit(train.main(sys.argv[1:], datasets=datasets(), loss_hook=hook))
