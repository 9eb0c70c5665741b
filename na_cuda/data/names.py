"""The dataset name registry: the canonical names, their aliases and display titles (a leaf module: it imports
nothing of ``na_cuda.data``, so the lookup in ``store`` and the loaders in ``catalog`` can both use it).
See docs/training.md."""

from __future__ import annotations

from typing import Dict, Tuple

DATASETS: Tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "nmnist", "digits")
ALIASES: Dict[str, str] = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "n-mnist": "nmnist",
    "n_mnist": "nmnist",
}
TITLES: Dict[str, str] = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "nmnist": "N-MNIST",
    "digits": "digits",
}


def canonical_name(name: str) -> str:
    """The canonical spelling (one of :data:`DATASETS`) of a dataset name; case and a few aliases are accepted."""
    if not isinstance(name, str):
        raise TypeError(
            f"na_cuda.data: the dataset `name` must be a str, one of {', '.join(DATASETS)}; got {type(name).__name__}"
        )
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"na_cuda.data: unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key
