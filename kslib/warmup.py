"""Warm every compiled kernel once, so a learner's first cell does not wait for numba.

``python -m kslib.warmup`` (run by binder/postBuild with NUMBA_CPU_NAME=generic) imports every
kslib module and calls each module-level ``warmup()`` it defines; a module with numba kernels
defines one that calls them on small representative inputs, which writes numba's on-disk cache.
"""
from __future__ import annotations

import importlib
import pkgutil
import time

import kslib


def warm() -> list[str]:
    """Import all of kslib and run every module's ``warmup()``; returns the modules warmed."""
    warmed = []
    for info in pkgutil.walk_packages(kslib.__path__, prefix="kslib."):
        if info.name == __name__:
            continue
        module = importlib.import_module(info.name)
        fn = getattr(module, "warmup", None)
        if callable(fn):
            fn()
            warmed.append(info.name)
    return warmed


if __name__ == "__main__":
    t = time.perf_counter()
    names = warm()
    print(f"kslib.warmup: imported kslib, warmed {len(names)} module(s) "
          f"{', '.join(names) or '(no compiled kernels yet)'} in {time.perf_counter() - t:.1f} s")
