"""``python tests/_train_runner.py ARGS`` = ``python -m na_cuda.train ARGS`` on the fake digits of ``_fake_data``
(for subprocess and torchrun tests that must not depend on real data)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fake_data import datasets  # noqa: E402

from na_cuda import train  # noqa: E402

if __name__ == "__main__":
    sys.exit(train.main(sys.argv[1:], datasets=datasets()))
