"""A smooth stand-in for the data, for the structure tests to differentiate and to query at
points the data does not contain (AI Feynman's neural-network oracle, here a Gaussian process).

A Gaussian process with a squared-exponential kernel, one length scale per input (ARD), and a
noise term, its hyperparameters set by maximising the marginal likelihood. Measured here on
laws of 3-4 variables from 800 points: 1e-4 to 1e-3 relative error noise-free (a tanh MLP fitted
by L-BFGS for the same time: 3e-3 to 2e-2), and about the noise level at 1 % noise; its
gradient is analytic and as smooth as the kernel. The tests read gradients and mixed
differences, which magnify the stand-in's error, so that accuracy is what decides.

Deterministic: a seeded subsample, a fixed start, full-batch L-BFGS in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

MAX_POINTS = 800  # an n x n Cholesky per likelihood step: 800 points keep the fit near a second
CHUNK = 4096


@dataclass
class Surrogate:
    Z: torch.Tensor  # standardised training inputs (m, d)
    alpha: torch.Tensor  # K^-1 (t - mean), (m, 1)
    inv_ls2: torch.Tensor  # 1 / length_scale^2, (d,)
    sf2: float
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float
    rel_err: float  # validation RMSE / std(y): the floor under every structure statistic
    log_cols: np.ndarray  # (d,) bool: columns the kernel sees as log(x)

    def _z(self, X) -> torch.Tensor:
        return torch.as_tensor((_warp(X, self.log_cols) - self.x_mean) / self.x_std)

    def _k(self, Zq: torch.Tensor) -> torch.Tensor:
        A, B = Zq * self.inv_ls2.sqrt(), self.Z * self.inv_ls2.sqrt()
        d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T
        return self.sf2 * torch.exp(-0.5 * d2.clamp_min(0))

    @torch.no_grad()
    def __call__(self, X) -> np.ndarray:
        Zq = self._z(X)
        out = [self._k(Zq[s : s + CHUNK]) @ self.alpha for s in range(0, len(Zq), CHUNK)]
        return torch.cat(out)[:, 0].numpy() * self.y_std + self.y_mean if out else np.zeros(0)

    @torch.no_grad()
    def grad(self, X) -> np.ndarray:
        """df/dx at the rows of ``X``, ``(n, d)``, in the data's own units."""
        Zq = self._z(X)
        parts = []
        for s in range(0, len(Zq), CHUNK):
            z = Zq[s : s + CHUNK]
            w = self._k(z) * self.alpha[:, 0][None, :]  # (q, m)
            # d k(z, z_i) / dz = -k (z - z_i) / ls^2
            g = -(w.sum(1, keepdim=True) * z - w @ self.Z) * self.inv_ls2
            parts.append(g)
        g = torch.cat(parts).numpy() if parts else np.zeros((0, len(self.x_std)))
        g = g * self.y_std / self.x_std
        if self.log_cols.any():  # d/dx = d/dlog(x) / x on the warped columns
            X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
            g[:, self.log_cols] /= X[:, self.log_cols]
        return g


def _warp(X, log_cols: np.ndarray) -> np.ndarray:
    X = np.array(X, dtype=np.float64).reshape(len(X), -1)
    if log_cols.any():
        with np.errstate(all="ignore"):
            X[:, log_cols] = np.log(X[:, log_cols])
    return X


def _log_columns(X: np.ndarray) -> np.ndarray:
    """Positive columns spanning more than a decade whose samples lie more evenly in log(x) than
    in x (the median nearer the middle of the range): a kernel of one length scale fits those
    far better in log(x) (kT/E over [0.04, 25]: 5 % error in x, well under 1 % in log x). A
    uniform column from near 0 ([0, 2]) stays as it is: in log(x) its few smallest samples
    stretch over most of the range, the kernel is unsure there, and d/dx = d/dlog(x) / x
    magnifies that into gradients wrong by several times (sin(x - mu) with mu in [0, 2])."""
    lo, hi = X.min(0), X.max(0)
    cand = (lo > 0) & (hi > 10 * lo)
    out = np.zeros(X.shape[1], dtype=bool)
    for k in np.flatnonzero(cand):
        med = float(np.median(X[:, k]))
        lin = (med - lo[k]) / (hi[k] - lo[k])
        lg = (math.log(med) - math.log(lo[k])) / (math.log(hi[k]) - math.log(lo[k]))
        out[k] = abs(lg - 0.5) < abs(lin - 0.5)
    return out


def fit_surrogate(X, y, Xv=None, yv=None, *, seed: int = 0, iters: int = 40) -> Surrogate:
    """Fit the surrogate on ``(X, y)`` (a seeded subsample of at most MAX_POINTS rows); its error
    is measured on ``(Xv, yv)``, or on the rows left out, or on the training rows."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    left = None
    if len(X) > MAX_POINTS:
        perm = np.random.default_rng(seed).permutation(len(X))
        keep, left = np.sort(perm[:MAX_POINTS]), perm[MAX_POINTS:]
        Xl, yl = X[left], y[left]
        X, y = X[keep], y[keep]
    log_cols = _log_columns(X)
    W = _warp(X, log_cols)
    x_mean, x_std = W.mean(0), W.std(0)
    x_std = np.where(x_std > 0, x_std, 1.0)
    y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
    Z = torch.as_tensor((W - x_mean) / x_std)
    T = torch.as_tensor((y - y_mean) / y_std)[:, None]
    n, d = Z.shape
    eye = torch.eye(n, dtype=torch.float64)
    # log length scales, log signal variance, log noise variance; bounded so a wild line-search
    # step cannot make the kernel matrix singular
    p = torch.tensor([0.0] * d + [0.0, -6.0], dtype=torch.float64, requires_grad=True)

    def unpack(p):
        return torch.exp(-2 * p[:d].clamp(-4, 4)), torch.exp(p[d].clamp(-6, 8)), torch.exp(p[d + 1].clamp(-25, 2)) + 1e-9

    def kernel(inv_ls2, sf2):
        A = Z * inv_ls2.sqrt()
        sq = (A * A).sum(1)
        return sf2 * torch.exp(-0.5 * (sq[:, None] + sq[None, :] - 2 * A @ A.T).clamp_min(0))

    def chol(inv_ls2, sf2, sn2):
        K = kernel(inv_ls2, sf2)
        for jitter in (0.0, 1e-8, 1e-6, 1e-4):
            L, info = torch.linalg.cholesky_ex(K + (sn2 + jitter * sf2) * eye)
            if int(info) == 0:
                return L
        raise np.linalg.LinAlgError("the surrogate's kernel matrix is not positive definite")

    opt = torch.optim.LBFGS([p], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        L = chol(*unpack(p))
        a = torch.cholesky_solve(T, L)
        loss = 0.5 * (T * a).sum() + torch.log(torch.diagonal(L)).sum()
        loss.backward()
        return loss

    try:
        opt.step(closure)
    except (np.linalg.LinAlgError, RuntimeError):
        with torch.no_grad():
            p.copy_(torch.tensor([0.0] * d + [0.0, -6.0], dtype=torch.float64))
    with torch.no_grad():
        inv_ls2, sf2, sn2 = unpack(p)
        alpha = torch.cholesky_solve(T, chol(inv_ls2, sf2, sn2))
    s = Surrogate(Z, alpha, inv_ls2.detach(), float(sf2), x_mean, x_std, y_mean, y_std, math.inf, log_cols)
    if Xv is not None and len(Xv):
        Xe, ye = np.asarray(Xv, dtype=np.float64).reshape(len(Xv), -1), np.asarray(yv, dtype=np.float64).reshape(-1)
    elif left is not None:
        Xe, ye = Xl, yl
    else:
        Xe, ye = X, y
    pred = s(Xe)
    s.rel_err = float(np.sqrt(np.mean((pred - ye) ** 2)) / y_std) if np.isfinite(pred).all() else math.inf
    return s
