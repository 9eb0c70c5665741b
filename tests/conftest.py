"""Session checks shared by every test file.

NA_CUDA_TEST_REQUIRE_NATIVE=cpu (or cpu,cuda) makes the run fail at once unless the compiled kernels for those
devices are loaded: CI sets it where it installs a wheel, so a wheel that silently fell back to the reference
backend cannot pass its tests (they would all run, slowly, on the reference). NA_CUDA_TEST_INSTALLED=1 also
requires the package to come from an installed wheel, not the source tree (scripts/check_cuda_build.sh).
"""

from __future__ import annotations

import os

import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    wanted = [d.strip() for d in os.environ.get("NA_CUDA_TEST_REQUIRE_NATIVE", "").split(",") if d.strip()]
    if not wanted:
        return
    import na_cuda

    if os.environ.get("NA_CUDA_TEST_INSTALLED") == "1" and "site-packages" not in na_cuda.__file__:
        raise pytest.UsageError(f"NA_CUDA_TEST_INSTALLED=1 but na_cuda comes from {na_cuda.__file__}")
    info = na_cuda.backends()
    missing = [d for d in wanted if not info.get(d)]
    if missing:
        raise pytest.UsageError(
            f"NA_CUDA_TEST_REQUIRE_NATIVE={','.join(wanted)}: no native kernels for {missing} "
            f"(load_error={info['load_error']!r}, cuda_error={info['cuda_error']!r})"
        )


def pytest_report_header(config: pytest.Config) -> str:
    import na_cuda

    info = na_cuda.backends()
    return (
        f"na_cuda {na_cuda.__version__} from {os.path.dirname(na_cuda.__file__)}; native cpu={info['cpu']} "
        f"(isa {info['cpu_isa']}) cuda={info['cuda']}; built with torch {info['built_with_torch']}, "
        f"running torch {info['torch_version']}"
    )
