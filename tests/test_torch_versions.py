"""One wheel across torch versions (issue 24, items 10-11): what the loader checks before it opens a library, what
it says when it refuses one, and code paths that older torch releases treat differently (fake-tensor mode, Dynamo).

The loader cases run in a subprocess on a copy of the installed package (a fresh process may load the libraries
again), with torch's version or CUDA version patched before `import na_cuda` and, for the CUDA cases, a stand-in
CUDA library: an empty shared library whose DT_NEEDED names the CUDA runtime a real one would link."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import na_cuda
from na_cuda import _backend
from na_cuda.params import values_fit_dtype
from tests.helpers import needs_native

PACKAGE = Path(na_cuda.__file__).resolve().parent
CC = shutil.which("cc") or shutil.which("gcc")


class _NoScalarReads(TorchDispatchMode):
    """Refuses a tensor -> Python scalar read, as torch 2.10's fake-tensor mode does inside a fake kernel."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            raise RuntimeError(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "value, dtype, rounded",
    [
        (1e39, torch.float32, "inf"),
        (-1e39, torch.bfloat16, "-inf"),
        (1e-50, torch.float32, "0.0"),
        (1e-40, torch.float32, "9.99994610111476e-41"),
        (1e-320, torch.float64, "1e-320"),
    ],
)
def test_item10_dtype_message_needs_no_tensor(value, dtype, rounded):
    """The message says what the value becomes in the compute dtype without a tensor round trip (torch 2.10's
    fake kernels failed with 'aten._local_scalar_dense.default' instead of naming the argument)."""
    with _NoScalarReads(), pytest.raises(ValueError, match="surrogate_alpha") as exc:
        values_fit_dtype([("surrogate_alpha", value)], dtype)
    assert f" is {rounded} in " in str(exc.value), exc.value
    cd = torch.float64 if dtype == torch.float64 else torch.float32
    assert repr(torch.tensor(value, dtype=cd).item()) == rounded  # the same rounding as the tensor's


def _stub_library(directory: Path, name: str, needed: list[str]) -> Path:
    """An empty ELF shared library `name` whose DT_NEEDED lists `needed` (each built as an empty stub beside it,
    then removed: the loader must look for them and fail, unless a test keeps them)."""
    src = directory / "empty.c"
    src.write_text("int na_cuda_stub;\n")
    for soname in needed:
        subprocess.run(
            [CC, "-shared", "-fPIC", "-o", str(directory / soname), f"-Wl,-soname,{soname}", str(src)], check=True
        )
    out = directory / name
    links = [f"-l:{soname}" for soname in needed]
    subprocess.run(
        [CC, "-shared", "-fPIC", "-o", str(out), str(src), "-Wl,--no-as-needed", f"-L{directory}", *links], check=True
    )
    for soname in needed:
        (directory / soname).unlink()
    src.unlink()
    return out


def _package_copy(tmp_path: Path, cuda_needed: list[str] | None = None) -> Path:
    """A copy of the installed package in tmp_path/na_cuda: its compiled CPU library and build facts, and the
    stand-in CUDA library when `cuda_needed` is given (never the real one)."""
    dst = tmp_path / "na_cuda"
    shutil.copytree(PACKAGE, dst, ignore=shutil.ignore_patterns("_C_cuda*", "__pycache__"))
    if cuda_needed is not None:
        _stub_library(tmp_path, "_C_cuda.so", cuda_needed).rename(dst / "_C_cuda.so")
    return dst


def _import_report(tmp_path: Path, patch: str, body: str = "") -> str:
    """Import the copy in a fresh process after `patch` (e.g. a torch version), run `body`, print the report."""
    code = (
        "import sys, json, warnings\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '').lower()]\n"
        "shown = []  # NativeBackendWarnings as the user sees them, under na_cuda's own 'once' filter\n"
        "warnings.showwarning = lambda m, c, *a, **k: shown.append(str(m)) if c.__name__ == 'NativeBackendWarning' "
        "else None\n"
        "import torch\n"
        f"{patch}\n"
        "import na_cuda\n"
        f"assert na_cuda.__file__.startswith({str(tmp_path)!r}), na_cuda.__file__\n"
        "import_warnings = list(shown)\n"
        f"{body}\n"
        "info = na_cuda.backends()\n"
        "info['loaded'] = sorted(p.rsplit('/', 1)[-1] for p in torch.ops.loaded_libraries)\n"
        "info['import_warnings'], info['call_warnings'] = import_warnings, shown[len(import_warnings):]\n"
        "print(json.dumps(info))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@needs_native
def test_item11_older_torch_is_refused_before_loading(tmp_path):
    """torch 2.9 must hear the minimum version, not "_C.so did not load" (a missing shim symbol): the check comes
    before the library is opened, and the reference still runs."""
    import json

    _package_copy(tmp_path)
    body = "c = torch.rand(4, 3, dtype=torch.float64)\nassert na_cuda.lif(c).shape == c.shape\n"
    info = json.loads(_import_report(tmp_path, "torch.__version__ = '2.9.1'", body))
    assert not info["native_loaded"] and info["loaded"] == [], info
    assert "need torch >= 2.10" in info["load_error"] and "2.9.1" in info["load_error"], info
    cpu_warnings = [w for w in info["import_warnings"] if "no native kernel for cpu" in w]  # CUDA torch: +1 for cuda
    assert len(cpu_warnings) == 1 and "torch >= 2.10" in cpu_warnings[0], info
    assert info["call_warnings"] == [], info  # said once, at import


@needs_native
@pytest.mark.skipif(CC is None, reason="needs a C compiler to make the stand-in CUDA library")
def test_item11_cuda_major_mismatch_is_refused_before_loading(tmp_path):
    """A CUDA 13 library under a CUDA 12 torch: not loaded (two CUDA runtimes in one process, or none found), and
    the reason names both CUDA versions and the fix."""
    import json

    _package_copy(tmp_path, ["libcudart.so.13"])
    info = json.loads(_import_report(tmp_path, "torch.version.cuda = '12.8'"))
    assert info["cpu"] and not info["cuda"] and "_C_cuda.so" not in info["loaded"], info
    err = info["cuda_error"]
    assert "built for CUDA 13" in err and "CUDA 12.8" in err and "cu13x" in err and "from source" in err, err
    assert any("no native kernel for cuda" in w for w in info["import_warnings"]), info


@needs_native
@pytest.mark.skipif(CC is None, reason="needs a C compiler to make the stand-in CUDA library")
def test_item11_load_failure_keeps_the_loaders_message(tmp_path):
    """Where the CUDA majors agree but the runtime is missing, cuda_error quotes the dynamic loader ("libcudart.so.N:
    cannot open shared object file"), not torch's "Could not load this library"."""
    import json

    _package_copy(tmp_path, ["libcudart.so.99"])
    info = json.loads(_import_report(tmp_path, "torch.version.cuda = '99.0'"))
    assert info["cpu"] and not info["cuda"], info
    assert "libcudart.so.99: cannot open shared object file" in info["cuda_error"], info


def test_item11_needed_reads_the_elf():
    """The ELF reader finds the libraries a real shared object links (here: torch's own libtorch_cpu)."""
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    if not lib.exists():
        pytest.skip(f"no {lib}")
    assert "libc10.so" in _backend._needed(lib)
    assert _backend._needed(Path(__file__)) == []  # not an ELF file


def test_item11_fallback_warning_stays_out_of_compiled_graphs(tmp_path):
    """With no compiled kernels (an unbuilt copy), backend="auto" warns at import, once, and a fullgraph compile of
    the fallback works (torch 2.9's Dynamo cannot trace the warnings.warn that used to sit in the call)."""
    import json

    shutil.copytree(PACKAGE, tmp_path / "na_cuda", ignore=shutil.ignore_patterns("_C*.so", "__pycache__"))
    body = (
        "c = torch.rand(4, 3)\n"
        "f = torch.compile(lambda x: na_cuda.lif(x), fullgraph=True, backend='eager')\n"
        "torch.testing.assert_close(f(c), na_cuda.lif(c, backend='torch'))\n"
    )
    info = json.loads(_import_report(tmp_path, "", body))
    cpu_warnings = [w for w in info["import_warnings"] if "no native kernel for cpu" in w]  # CUDA torch: +1 for cuda
    assert not info["native_loaded"] and len(cpu_warnings) == 1 and info["call_warnings"] == [], info
    assert "is not built" in cpu_warnings[0], info


def test_item11_users_filter_silences_the_import_warning(tmp_path):
    """na_cuda installs no warnings filter of its own, so an ``ignore`` set before the import holds."""
    import json

    shutil.copytree(PACKAGE, tmp_path / "na_cuda", ignore=shutil.ignore_patterns("_C*.so", "__pycache__"))
    patch = "warnings.filterwarnings('ignore', message='na_cuda: no native kernel')"
    info = json.loads(_import_report(tmp_path, patch))
    assert not info["native_loaded"] and info["import_warnings"] == [], info
