"""``python -m na_cuda.train``: see ``na_cuda.train`` and ``python -m na_cuda.train --help``. See docs/training.md."""

import sys

from .cli import main

sys.exit(main())
