"""The autograd layers' dense feature block, built and differentiated by compiled passes
(``csrc/block.c``): one streaming pass each for the block, for its input gradient and for the
uniform-knot shortcut's local values, instead of a zero fill and a scatter per slot, a gather
per slot, and a dozen elementwise torch ops. spline.py decides when to use them
(:func:`_compiled_ok`) and keeps the torch versions for CUDA, other dtypes and builds without a
C compiler; tests check the two against each other."""
from __future__ import annotations

import math
import threading

import torch

try:  # optional: setup.py builds it where a C compiler is available
    from . import _kernels
except ImportError:  # pragma: no cover - exercised where no C compiler was available
    _kernels = None


_thread_scratch = threading.local()


def _scratch(name: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """A CPU buffer reused by this thread from one call to the next (contents undefined)."""
    bufs = getattr(_thread_scratch, "bufs", None)
    if bufs is None:
        bufs = _thread_scratch.bufs = {}
    t = bufs.get(name)
    if t is None or t.dtype != dtype or t.numel() < math.prod(shape):
        t = bufs[name] = torch.empty(math.prod(shape), dtype=dtype)
    return t[: math.prod(shape)].view(shape)


def _compiled_ok(*ts: torch.Tensor) -> bool:
    return _kernels is not None and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
                                        for t in ts)


def _block_threads(N: int) -> int:
    """Two threads of the pool (csrc/pool.c) for large blocks. Between torch's own ops its
    OpenMP workers are still spinning on the other core; with a thread started per call this
    measured slower than one thread, but the pool's worker spins too and its job is taken
    over by the caller when it is late: 64 -> 64 layer through the block, batch 4096,
    12.0-13.1x -> 11.4-11.7x Linear+SiLU. (Plain spline layers now skip the block:
    compiled_edge_sum.py; it remains for per-edge activations and product / snapped layers.)"""
    return 2 if N >= 65536 and torch.get_num_threads() >= 2 else 1


def _assemble_compiled(vals: torch.Tensor, c0: torch.Tensor, b: int, n: int, width: int, k: int) -> torch.Tensor:
    """:func:`_assemble`'s block in one compiled pass (``_kernels.assemble``)."""
    N = b * n
    F = vals.new_empty(b, n, width)
    _kernels.assemble(N, width, k, vals.shape[0] > k + 1, vals.element_size(), vals.contiguous().numpy(),
                      c0.contiguous().numpy(), F.numpy(), _block_threads(N))
    return F


def _grad_x_compiled(grad: torch.Tensor, c0: torch.Tensor, dL: torch.Tensor, with_silu: bool) -> torch.Tensor:
    """:func:`_grad_x` in one compiled pass (``_kernels.block_grad``); ``grad`` in any layout
    whose rows are contiguous."""
    b, n, width = grad.shape
    if grad.stride(-1) != 1 or grad.dtype != dL.dtype:
        grad = grad.contiguous().to(dL.dtype)
    sb, sn, _ = grad.stride()
    flat = grad.as_strided(((b - 1) * sb + (n - 1) * sn + width,), (1,)) if grad.numel() else grad.reshape(-1)
    gx = dL.new_empty(b, n)
    _kernels.block_grad(b * n, width, dL.shape[0] - 1 - with_silu, with_silu, dL.element_size(), n, sb, sn,
                        flat.detach().numpy(), c0.contiguous().numpy(), dL.contiguous().numpy(), gx.numpy(),
                        _block_threads(b * n))
    return gx
