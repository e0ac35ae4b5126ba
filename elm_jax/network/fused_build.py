"""Builds the fused CPU kernel of the ELM network (`elm_jax/network/kernel/`) for this machine.

The kernel is compiled here, with the machine's C++ compiler, against the XLA FFI headers of the
jaxlib that is imported (`jax.ffi.include_dir()`), and cached as a shared library whose name is
a hash of the sources, those headers, the jaxlib version, the compiler and its flags: a library
built against other headers is never loaded. ``make install`` (so ``make test`` and CI) builds it
ahead with ``python -m elm_jax.network.fused_build``; otherwise the first use builds it.

Portability: the kernels are compiled twice, for the x86-64 baseline and for AVX2 + FMA, and the
AVX2 build runs only where the CPU reports both (checked at run time), so a library built on one
machine runs on any x86-64 machine (and on other architectures the baseline alone is built).

Without a compiler, or when the build fails, `library_path` returns None with the reason in
`build_problem`, and the network runs on the XLA path (`elm_jax.network.fused`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile

KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel")
SOURCES = (
    "elm_network_ffi.cc",
    "elm_neuron_ffi.cc",
    "elm_network_isa_baseline.cc",
    "elm_network_isa_avx2.cc",
)
HEADERS = (
    "elm_network_body.h",
    "elm_network_types.h",
    "elm_neuron_body.h",
    "elm_neuron_types.h",
    "elm_project_body.h",
    "elm_readout_body.h",
    "elm_kernel_runtime.h",
)
BASE_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-fno-math-errno", "-fvisibility=hidden", "-Wno-psabi")
# Per translation unit: the instruction set it is compiled for (x86-64 only for AVX2).
ISA_FLAGS = {"elm_network_isa_avx2.cc": ("-mavx2", "-mfma")}

_problem: str | None = None


def _compiler() -> str | None:
    """The C++ compiler: $CXX when set (None when it does not exist), else c++ or g++."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    return shutil.which("c++") or shutil.which("g++")


def _sources() -> tuple[str, ...]:
    if platform.machine().lower() in ("x86_64", "amd64"):
        return SOURCES
    return tuple(s for s in SOURCES if s not in ISA_FLAGS)


def _defines() -> tuple[str, ...]:
    return ("-DELM_NETWORK_HAVE_AVX2",) if "elm_network_isa_avx2.cc" in _sources() else ()


def _cache_dirs() -> list[str]:
    """Where the library may live: next to the sources when writable, else the user cache."""
    user = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [os.path.join(KERNEL_DIR, "_build"), os.path.join(user, "elm_jax", "kernels")]


def _key(cxx: str, include_dir: str) -> str:
    """Hash of everything the library depends on."""
    import jaxlib

    digest = hashlib.sha256()
    for name in (*_sources(), *HEADERS):
        with open(os.path.join(KERNEL_DIR, name), "rb") as f:
            digest.update(name.encode() + f.read())
    for sub in ("xla/ffi/api/ffi.h", "xla/ffi/api/api.h", "xla/ffi/api/c_api.h"):
        with open(os.path.join(include_dir, sub), "rb") as f:
            digest.update(f.read())
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    digest.update(version.stdout.encode())
    digest.update(" ".join((*BASE_FLAGS, *_defines(), jaxlib.__version__)).encode())
    digest.update(platform.machine().encode())
    return digest.hexdigest()[:20]


def _compile(cxx: str, include_dir: str, out: str) -> None:
    """Compiles each translation unit with its flags and links them into `out` (atomically)."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:
        objects = []
        for name in _sources():
            obj = os.path.join(tmp, name + ".o")
            cmd = [cxx, *BASE_FLAGS, *ISA_FLAGS.get(name, ()), *_defines(), "-I", include_dir]
            cmd += ["-I", KERNEL_DIR, "-c", os.path.join(KERNEL_DIR, name), "-o", obj]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
            objects.append(obj)
        lib = os.path.join(tmp, "lib.so")
        cmd = [cxx, "-shared", "-o", lib, *objects]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
        os.replace(lib, out)  # concurrent builders write identical files: the last one wins
    folder = os.path.dirname(out)
    for name in os.listdir(folder):  # libraries of earlier sources or jaxlibs are never loaded
        if (
            name.startswith("libelm_network_")
            and name.endswith(".so")
            and name != os.path.basename(out)
        ):
            os.remove(os.path.join(folder, name))


def library_path(build: bool = True) -> str | None:
    """The kernel library for this machine and jaxlib, built when missing and `build`; None
    (and `build_problem()` says why) when it cannot be had."""
    global _problem
    import jax

    cxx = _compiler()
    if cxx is None:
        _problem = "no C++ compiler found (set CXX or install g++)"
        return None
    include_dir = jax.ffi.include_dir()
    try:
        name = f"libelm_network_{_key(cxx, include_dir)}.so"
    except OSError as err:
        _problem = f"cannot read the kernel sources or the FFI headers: {err}"
        return None
    for folder in _cache_dirs():
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    if not build:
        _problem = "the kernel is not built (python -m elm_jax.network.fused_build)"
        return None
    errors = []
    for folder in _cache_dirs():
        path = os.path.join(folder, name)
        try:
            _compile(cxx, include_dir, path)
            return path
        except OSError as err:  # not writable: try the next folder
            errors.append(f"{folder}: {err}")
        except RuntimeError as err:
            _problem = f"the kernel build failed: {err}"
            return None
    _problem = "no writable folder for the kernel: " + "; ".join(errors)
    return None


def build_problem() -> str | None:
    """Why the last `library_path` call returned None."""
    return _problem


def main(argv: list[str] | None = None) -> int:
    """Builds the kernel (or finds it built); says where, or why not. Exit code 0 either way:
    without the kernel the package runs on the XLA path."""
    argparse.ArgumentParser(description=main.__doc__.split("\n")[0]).parse_args(argv)
    path = library_path()
    if path is None:
        print(f"fused CPU kernel: not built ({_problem}); the ELM network runs on the XLA path")
        return 0
    print(f"fused CPU kernel: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
