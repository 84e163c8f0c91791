"""Only the compiled kernels live here; everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and kanstudio trains through
its numpy objective instead (slower, same results; see kanstudio/core/objective.py)."""
from setuptools import Extension, setup

SOURCES = [f"kanstudio/core/csrc/{name}.c" for name in ("module", "pool", "layer", "loss")]

setup(ext_modules=[Extension("kanstudio.core._kernels", SOURCES, depends=[f"kanstudio/core/csrc/{name}.h" for name in ("kernels", "layer_loops", "vec_math", "span_basis")],
                             extra_compile_args=["-O3"], optional=True)])
