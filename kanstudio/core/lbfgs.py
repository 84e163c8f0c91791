"""Full-batch LBFGS with a strong-Wolfe line search: ``torch.optim.LBFGS(line_search_fn=
"strong_wolfe")``, the same algorithm line for line, for CPU parameters, with its per-evaluation
overhead removed (see :class:`FlatLBFGS`)."""
from __future__ import annotations

import math

import numpy as np
import torch


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    # torch.optim.lbfgs._cubic_interpolate, on Python floats.
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    # torch.optim.lbfgs._strong_wolfe, on numpy vectors and Python floats.
    d_norm = float(np.abs(d).max())
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = float(g_new.dot(d))
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = float(g_new.dot(d))
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = float(g_new.dot(d))
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def _two_loop(g: np.ndarray, S: np.ndarray, Y: np.ndarray, ro: list, H_diag: float) -> np.ndarray:
    """``-H g`` from the first ``len(ro)`` curvature pairs (rows of ``S``, ``Y``, oldest first):
    torch's two-loop recursion, the same operations in the same order."""
    m = len(ro)
    al = [0.0] * m
    q = -g
    for i in range(m - 1, -1, -1):
        al[i] = float(S[i].dot(q)) * ro[i]
        q -= al[i] * Y[i]
    r = q * H_diag
    for i in range(m):
        be_i = float(Y[i].dot(r)) * ro[i]
        r += (al[i] - be_i) * S[i]
    return r


class FlatLBFGS:
    """``torch.optim.LBFGS(line_search_fn="strong_wolfe")``, the same algorithm line for line,
    for CPU parameters, with its per-evaluation overhead removed.

    torch's version moves parameters with one op per tensor (add, copy, clone, and a cat to gather
    the gradient) and does its vector algebra with 0-d tensors synchronised back to Python;
    for a KAN of a few hundred weights that was ~20 % of a training step. Here the parameters
    become views into one flat buffer (moved with one op), and the curvature memory, two-loop
    recursion and line search run in numpy on views of it. :meth:`release` gives every parameter
    its own storage back.
    """

    def __init__(self, params, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100):
        self.params = list(params)
        self.lr, self.max_iter = lr, max_iter
        self.max_eval = max_eval if max_eval is not None else max_iter * 5 // 4
        self.tolerance_grad, self.tolerance_change, self.history_size = tolerance_grad, tolerance_change, history_size
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self.params])
            off = 0
            for p in self.params:
                p.data = flat[off : off + p.numel()].view_as(p)
                off += p.numel()
        self.flat = flat
        self._zeros = {}
        self.state: dict = {"func_evals": 0, "n_iter": 0}

    @staticmethod
    def supports(params) -> bool:
        params = list(params)
        return bool(params) and all(p.device.type == "cpu" and p.dtype in (torch.float32, torch.float64)
                                    and p.dtype == params[0].dtype for p in params)

    def release(self) -> None:
        with torch.no_grad():
            for p in self.params:
                p.data = p.data.clone()

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _flat_grad(self) -> np.ndarray:
        gs = []
        for p in self.params:
            g = p.grad
            if g is None:
                g = self._zeros.get(id(p))
                if g is None:
                    g = self._zeros[id(p)] = torch.zeros(p.numel(), dtype=p.dtype)
            gs.append(g.reshape(-1))
        return torch.cat(gs).numpy()

    def _add(self, t: float, d: np.ndarray) -> None:
        with torch.no_grad():
            self.flat.add_(torch.from_numpy(d), alpha=t)

    def _set(self, x: np.ndarray) -> None:
        with torch.no_grad():
            self.flat.copy_(torch.from_numpy(x))

    def _unpack(self, out) -> tuple[float, np.ndarray]:
        """A closure returns either the loss tensor (gradients in ``p.grad``, as for torch's
        LBFGS) or ``(loss, flat gradient)`` already (a hand-differentiated objective)."""
        if isinstance(out, tuple):
            return float(out[0]), out[1]
        return float(out.detach()), self._flat_grad()

    def _directional_evaluate(self, closure, x, t, d):
        self._add(t, d)
        loss, flat_grad = self._unpack(closure())
        self._set(x)
        return loss, flat_grad

    def step(self, closure):
        closure = torch.enable_grad()(closure)
        lr, max_iter, max_eval = self.lr, self.max_iter, self.max_eval
        tolerance_grad, tolerance_change, history_size = self.tolerance_grad, self.tolerance_change, self.history_size
        state = self.state
        orig_loss = closure()  # returned as the closure gave it, like torch's LBFGS
        loss, flat_grad = self._unpack(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        opt_cond = np.abs(flat_grad).max() <= tolerance_grad
        if opt_cond:
            return orig_loss
        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                # curvature pairs y (old_dirs) and s (old_stps) as rows, the first len(ro) in use
                old_dirs = np.empty((history_size, flat_grad.size), dtype=flat_grad.dtype)
                old_stps = np.empty_like(old_dirs)
                ro = []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = float(y.dot(s))
                if ys > 1e-10:
                    if len(ro) == history_size:  # rows are oldest first: drop row 0
                        old_dirs[:-1] = old_dirs[1:]
                        old_stps[:-1] = old_stps[1:]
                        ro.pop(0)
                    old_dirs[len(ro)] = y
                    old_stps[len(ro)] = s
                    ro.append(1.0 / ys)
                    H_diag = ys / float(y.dot(y))
                d = _two_loop(flat_grad, old_stps, old_dirs, ro, H_diag)
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss
            t = min(1.0, 1.0 / float(np.abs(flat_grad).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = float(flat_grad.dot(d))
            if gtd > -tolerance_change:
                break
            x_init = self.flat.numpy().copy()
            loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                lambda x, t, d: self._directional_evaluate(closure, x, t, d), x_init, t, d, loss, flat_grad, gtd,
                tolerance_change=1e-9, max_ls=max_eval - current_evals)
            self._add(t, d)
            opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if np.abs(d * t).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss
