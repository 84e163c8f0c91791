"""One KAN layer, forward + backward, as a multiple of a dense layer of the same shape.

KANLayer 64 -> 64, grid=5, k=3, batch 4096, float32; inputs x ~ U[-1, 1] that require grad
(a hidden layer: the basis is recomputed every call and the gradient flows to x), loss =
sum of the output, then backward. Reference: nn.Linear(64, 64) + SiLU on the same x. pykan
0.2.8's KANLayer is timed too (same shape, same x), in the same process.
Median of repeats after warm-up; the last line is kanstudio's time as a multiple of Linear+SiLU.

    .venv/bin/python benchmarks/layer_forward_backward.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _pykan import THREADS, quiet, require_pykan  # noqa: E402
N_IN, N_OUT, BATCH, G, K = 64, 64, 4096, 5, 3
REPEATS, WARMUP = 25, 5


def import_pykan_layer():
    return require_pykan("kan.KANLayer").KANLayer


def median_time(fn, repeats=REPEATS, warmup=WARMUP) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fwd_bwd(module, x, pick=lambda out: out):
    def run():
        x.grad = None
        module.zero_grad(set_to_none=True)
        pick(module(x)).sum().backward()

    return run


def main() -> None:
    torch.set_num_threads(THREADS)
    PyKANLayer = import_pykan_layer()
    from kanstudio.core.layer import KANLayer

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(BATCH, N_IN, generator=g) * 2 - 1).requires_grad_()
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Linear(N_IN, N_OUT), torch.nn.SiLU())
    ours = KANLayer(N_IN, N_OUT, grid=G, k=K, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    with quiet():
        theirs = PyKANLayer(in_dim=N_IN, out_dim=N_OUT, num=G, k=K)

    print(f"layer forward+backward: {N_IN} -> {N_OUT}, batch {BATCH}, grid={G}, k={K}, float32, x requires grad")
    print(f"  torch {torch.__version__}, CPU, torch.set_num_threads({torch.get_num_threads()}); "
          f"median of {REPEATS} after {WARMUP} warm-up calls")
    t_dense = median_time(fwd_bwd(dense, x))
    t_ours = median_time(fwd_bwd(ours, x))
    t_pykan = median_time(fwd_bwd(theirs, x, pick=lambda out: out[0]), repeats=max(5, REPEATS // 5), warmup=2)
    print(f"nn.Linear({N_IN},{N_OUT}) + SiLU : {t_dense * 1e3:8.3f} ms   (1.0x)")
    print(f"kanstudio KANLayer      : {t_ours * 1e3:8.3f} ms   ({t_ours / t_dense:.1f}x Linear+SiLU)")
    print(f"pykan 0.2.8 KANLayer    : {t_pykan * 1e3:8.3f} ms   ({t_pykan / t_dense:.1f}x Linear+SiLU, "
          f"{t_pykan / t_ours:.1f}x kanstudio)")
    print(f"kanstudio KANLayer forward+backward / (Linear+SiLU): {t_ours / t_dense:.1f}x")


if __name__ == "__main__":
    main()
