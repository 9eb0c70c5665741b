"""``python -m na_cuda.experiments.mp_dist``. See docs/results.md."""

from .run import main

if __name__ == "__main__":
    main()
