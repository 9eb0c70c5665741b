"""Experiments reproducing the NA paper's studies (run each as ``python -m na_cuda.experiments.<name>``).
See docs/results.md."""
