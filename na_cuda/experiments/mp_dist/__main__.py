"""``python -m na_cuda.experiments.mp_dist``."""

from .run import main

if __name__ == "__main__":
    main()
