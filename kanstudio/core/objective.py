"""The full-batch training objective ``MSE + lamb * penalty`` and its gradient, differentiated
by hand, for CPU networks whose edges are all splines (nothing snapped).

Why it exists: a [2,5,1] KAN on 1000 rows is a few microseconds of arithmetic per evaluation,
and LBFGS evaluates it ~25 times per step. Through autograd each evaluation is ~60 torch calls
and a graph walk, ~1.5 ms. Two implementations, both tested against autograd so they cannot
drift apart:

- the compiled loops of ``csrc/layer.c`` (~0.24 ms), one forward and one backward pass per
  layer over each sample's k + 1 nonzero basis functions; sum and product nodes. They compute
  in float64: a float32 network's parameters are copied in at every call and its gradient
  handed back in float32. Its per-sample buffers and the input layer's basis survive from one
  ``train()`` call to the next (:meth:`FusedObjective.for_network`);
- without a C compiler at install: numpy on reused buffers (~0.7 ms), in the network's dtype,
  sum nodes only.

Both take the basis from the per-span polynomial tables the layers use
(:func:`~kanstudio.core.spline._span_polynomials`). Snapped edges and CUDA train through autograd.

Shapes per layer in the numpy version, input-major so that every matmul is a plain stack of
contiguous matrices:
input ``h (B, n)``, features ``F (n, B, M)`` with ``M = G + k + 1`` (basis, then silu; on uniform
knots one more, always-zero column), weights ``W (n, M, o)``, edge activations ``A (n, B, o)``,
output ``(B, o)``.
"""
from __future__ import annotations

import weakref

import numpy as np
import torch

from .network import KANNetwork
from .regularize import _l1_entropy
from .objective_basis import _Basis, _Workspace

try:  # the compiled loops (setup.py builds them from csrc/; optional)
    from . import _kernels
except ImportError:  # pragma: no cover - exercised where no C compiler was available
    _kernels = None

_LAYER_PARAMS = ("coef", "scale_base", "scale_sp", "bias", "sym_params")

# The last objective built for each network (see FusedObjective.for_network); weak, so a
# network's objective goes when the network does, and nothing extra is pickled with it.
_LAST: "weakref.WeakKeyDictionary[KANNetwork, FusedObjective]" = weakref.WeakKeyDictionary()


def _same_key(a, b) -> bool:
    return (a is not None and b is not None and len(a) == len(b)
            and all(x is y or (not isinstance(x, torch.Tensor) and x == y) for x, y in zip(a, b)))


class FusedObjective:
    """``objective() -> (loss, flat_grad, mse, reg)`` for the parameters ``params`` (in the order
    an optimiser flattens them). Parameter values are read on every call, so it follows an
    optimiser that moves them in place; knots, masks and scales are read on every call too."""

    def __init__(self, net: KANNetwork, X: torch.Tensor, y: torch.Tensor, params, lamb: float,
                 mu1: float, mu2: float, compiled: bool | None = None):
        # weak: _LAST maps the network to this objective, and a strong reference back would keep
        # every trained network (and its buffers) alive for good
        self._net = weakref.ref(net)
        self.lamb, self.mu1, self.mu2 = float(lamb), float(mu1), float(mu2)
        self.params = list(params)
        self.X, self.y = X, y.detach().numpy().copy()
        self._X_version = X._version
        where = {id(p): (l, name) for l, layer in enumerate(net.layers)
                 for name, p in layer.named_parameters(recurse=False)}
        self.slots, off = [], 0  # (layer, name, flat offset, numel) per trainable parameter
        for p in self.params:
            l, name = where[id(p)]
            self.slots.append((l, name, off, p.numel()))
            off += p.numel()
        self.size = off
        self._bases: dict[int, tuple] = {}
        self._first = None  # (key, F) of the first layer: its input is the same at every call
        self._workspaces: list[_Workspace] = []
        self._plan = None  # (key, argument tuples) of the compiled path
        self._buffers = _Workspace()  # the compiled plan's per-sample arrays, kept across plans
        self._input_basis = None  # what the input layer's basis in those buffers was computed for
        self._grad_dtype = self.params[0].detach().numpy().dtype if self.params else np.float64
        self.compiled = _kernels is not None if compiled is None else bool(compiled)
        if self.compiled and _kernels is None:
            raise ValueError("the compiled objective needs kanstudio.core._kernels")
        self._products = any(layer.n_prod for layer in net.layers)
        if self._products and not self.compiled:
            raise ValueError("product nodes need the compiled objective (kanstudio.core._kernels)")

    @property
    def net(self) -> KANNetwork:
        net = self._net()
        if net is None:
            raise RuntimeError("the network of this objective no longer exists")
        return net

    @classmethod
    def for_network(cls, net: KANNetwork, X: torch.Tensor, y: torch.Tensor, params, lamb: float,
                    mu1: float, mu2: float) -> "FusedObjective":
        """The objective for these arguments, reusing the network's previous one when the
        arguments are the same. Every ``train(steps=1)`` call makes a new optimiser; a new
        objective would allocate its ~10 MB of per-sample buffers afresh (the first touch of
        those pages cost more than an evaluation) and recompute the input layer's basis."""
        params = list(params)
        old = _LAST.get(net)
        if old is not None and old._same_problem(X, y, params, lamb, mu1, mu2):
            return old
        new = _LAST[net] = cls(net, X, y, params, lamb, mu1, mu2)
        return new

    def _same_problem(self, X: torch.Tensor, y: torch.Tensor, params, lamb: float, mu1: float, mu2: float) -> bool:
        if (len(params) != len(self.params) or any(a is not b for a, b in zip(params, self.params))
                or (float(lamb), float(mu1), float(mu2)) != (self.lamb, self.mu1, self.mu2)
                or X.shape != self.X.shape or X.dtype != self.X.dtype or tuple(y.shape) != self.y.shape):
            return False
        if X is self.X:  # changed in place: nothing left to compare it with
            if X._version != self._X_version:
                return False
        elif not np.array_equal(X.detach().numpy(), self.X.detach().numpy()):
            return False
        if not np.array_equal(y.detach().numpy(), self.y):
            return False
        self.X, self._X_version = X, X._version
        return True

    @staticmethod
    def supports(net: KANNetwork, params) -> bool:
        params = list(params)
        known = {id(p) for layer in net.layers for name, p in layer.named_parameters(recurse=False)
                 if name in _LAYER_PARAMS}
        products_ok = _kernels is not None  # (the numpy path has no products)
        return (net.device.type == "cpu" and net.dtype in (torch.float32, torch.float64)
                and all((layer.n_prod == 0 or products_ok) and not bool(layer.sym_mask.any()) for layer in net.layers)
                and bool(params) and all(id(p) in known and p.dtype == net.dtype for p in params))

    def _basis(self, l: int) -> _Basis:
        knots = self.net.layers[l].knots
        key = (id(knots), knots._version)
        c = self._bases.get(l)
        if c is None or c[0] != key:
            layer = self.net.layers[l]
            c = self._bases[l] = (key, _Basis(knots, layer.k, layer.tables()))
        return c[1]

    def _input_features(self) -> np.ndarray:
        net = self.net
        basis = self._basis(0)
        key = (id(basis), net.in_shift._version, net.in_scale._version)
        if self._first is None or self._first[0] != key:
            with torch.no_grad():
                h = ((self.X - net.in_shift) * net.in_scale).numpy()
            self._first = (key, basis.features(np.ascontiguousarray(h.T), False, _Workspace())[0])
        return self._first[1]

    def _ws(self, l: int) -> _Workspace:
        while len(self._workspaces) <= l:
            self._workspaces.append(_Workspace())
        return self._workspaces[l]

    def __call__(self) -> tuple[float, np.ndarray, float, float]:
        if self.compiled:
            return self._compiled_call()
        net, lamb = self.net, self.lamb
        reg_on = lamb > 0
        layers = list(net.layers)
        saved = []  # per layer: (F, pos, dvals, W, A, live, scale_sp * live, coef, node_scale)
        h = None
        for l, layer in enumerate(layers):
            ws = self._ws(l)
            if l == 0:
                Fx, pos, dvals = self._input_features(), None, None
            else:
                hT = np.ascontiguousarray(h.T)
                Fx, pos, dvals = self._basis(l).features(hT, True, ws)
            coef = layer.coef.detach().numpy()
            live = layer.mask.numpy()
            ns = layer.node_scale.numpy()
            sp = layer.scale_sp.detach().numpy() * live
            n, B, width = Fx.shape
            M, o = coef.shape[2] + 1, live.shape[1]
            W = np.empty((n, width, o), dtype=Fx.dtype)
            W[:, : M - 1, :] = (coef * sp[:, :, None]).transpose(0, 2, 1)
            W[:, M - 1, :] = layer.scale_base.detach().numpy() * live
            W[:, M:, :] = 0.0  # the uniform path's zero column
            A = np.matmul(Fx, W, out=ws.get("A", (n, B, o), Fx.dtype))  # (n, B, o)
            h = A.sum(0)
            h *= ns
            h += layer.bias.detach().numpy()
            saved.append((Fx, pos, dvals, W, A, live, sp, coef, ns))
        out_scale = net.out_scale.numpy()
        err = h * out_scale + net.out_shift.numpy() - self.y
        e = err.reshape(-1)
        mse = float(e @ e) / e.size
        g_out = err * (2.0 / err.size) * out_scale
        reg, g_mags = 0.0, []
        if reg_on:
            for l, item in enumerate(saved):
                A = item[4]
                mag = np.abs(A, out=self._ws(l).get("dA", A.shape, A.dtype)).sum(1) / A.shape[1]
                value, g = _l1_entropy(mag, self.mu1, self.mu2)
                reg += float(value)
                g_mags.append(g)
        grads: list[dict[str, np.ndarray]] = [dict() for _ in layers]
        for l in range(len(layers) - 1, -1, -1):
            Fx, pos, dvals, W, A, live, sp, coef, ns = saved[l]
            ws = self._ws(l)
            n, B, _ = Fx.shape
            M = coef.shape[2] + 1
            gY = g_out * ns
            grads[l]["bias"] = g_out.sum(0)
            if reg_on:
                dA = np.sign(A, out=ws.get("dA", A.shape, A.dtype))
                dA *= (lamb / B) * g_mags[l][:, None, :]
                dA += gY
            else:
                dA = gY  # the same for every input: matmul broadcasts it
            gW = np.matmul(Fx.transpose(0, 2, 1), dA)  # (n, M, o)
            g_w = gW[:, : M - 1, :].transpose(0, 2, 1)  # d/d(coef * sp): (n, o, M-1)
            grads[l]["coef"] = g_w * sp[:, :, None]
            grads[l]["scale_sp"] = np.einsum("iom,iom->io", g_w, coef) * live
            grads[l]["scale_base"] = gW[:, M - 1, :] * live
            if l > 0:
                gF = ws.get("gF", Fx.shape, Fx.dtype)  # (n, B, M)
                if W.shape[2] == 1:  # one output: an outer product, cheaper than a stack of matmuls
                    np.multiply(dA if dA.ndim == 3 else dA[None], W.transpose(0, 2, 1), out=gF)
                else:
                    np.matmul(dA, W.transpose(0, 2, 1), out=gF)
                g = gF.reshape(-1).take(pos, out=ws.get("g", pos.shape, Fx.dtype))
                g *= dvals
                g_out = g.sum(0).reshape(n, B).T
        flat = np.zeros(self.size, dtype=self.y.dtype)
        for l, name, off, size in self.slots:
            g = grads[l].get(name)
            if g is not None:
                flat[off : off + size] = g.reshape(-1)
        return mse + lamb * reg, flat, mse, reg

    def _plan_key(self) -> tuple:
        """What the compiled plan's arrays depend on: tensors that may be replaced (a grid
        update gives new knots) or changed in place (masks, scales). Parameter values are read
        through numpy views of the parameters' storage, so they need no key."""
        net = self.net
        key = [(t.data_ptr(), t._version) for t in (net.in_shift, net.in_scale, net.out_shift, net.out_scale)]
        for layer in net.layers:
            P, Bf = layer._parameters, layer._buffers
            kn = Bf["knots"]
            mk, ns = Bf["mask"], Bf["node_scale"]
            key += (id(kn), kn.data_ptr(), kn._version, mk.data_ptr(), mk._version, ns.data_ptr(), ns._version,
                    P["coef"].data_ptr(), P["scale_base"].data_ptr(), P["scale_sp"].data_ptr(), P["bias"].data_ptr())
        return tuple(key)

    @staticmethod
    def _threads(work: int) -> int:
        """Threads for one layer's loops: torch's setting, but one for small layers, where
        starting a thread (~20 us) costs more than it saves."""
        return max(1, min(torch.get_num_threads(), 8, work // 100_000))

    def _compiled_plan(self) -> dict:
        """Argument tuples of the compiled calls, built once per :meth:`_plan_key`: views of
        the parameters, the basis tables and reused buffers (None if a parameter has no
        contiguous storage of its own to view)."""
        net, reg_on = self.net, self.lamb > 0
        B = self.X.shape[0]
        f64 = np.float64
        offsets = {(l, name): off for l, name, off, _ in self.slots}
        # in numpy: a torch op this size runs on torch's OpenMP threads, which then spin for
        # milliseconds on the other core, where the compiled loops' worker needs to run
        h = np.ascontiguousarray((self.X.detach().numpy() - net.in_shift.numpy()) * net.in_scale.numpy(), dtype=f64)
        first = net.layers[0].knots
        # what the input layer's basis depends on: when a new plan keeps it, it is not recomputed
        # (the tensors themselves, compared by identity: an id alone could be reused by a new tensor)
        input_key = (self.X, self._X_version, first, first._version, net.in_shift.data_ptr(),
                     net.in_shift._version, net.in_scale.data_ptr(), net.in_scale._version)
        forward, backward, penalty, products, refresh = [], [], [], [], []

        def param(t: torch.Tensor) -> np.ndarray | None:
            """What the loops read for a parameter: a view of its storage, so it follows the
            optimiser's steps (None if it has no contiguous storage of its own); for a float32
            network a float64 copy, refreshed at every call."""
            a = t.detach().numpy()
            if a.dtype != f64:
                refresh.append((np.empty(a.shape, f64), t))
                return refresh[-1][0]
            a = np.ascontiguousarray(a)
            return a if a.ctypes.data == t.data_ptr() else None

        for l, layer in enumerate(net.layers):
            knots = np.ascontiguousarray(layer.knots.numpy(), dtype=f64)
            n, K = knots.shape
            k, o = layer.k, layer.mask.shape[1]
            coef, sb, sp, bias = (param(t) for t in (layer.coef, layer.scale_base, layer.scale_sp, layer.bias))
            if any(a is None for a in (coef, sb, sp, bias)):
                return None
            # (masks and scales are in the plan's key: a change makes a new plan, so copies do)
            mask, ns = (np.ascontiguousarray(t.numpy(), dtype=f64) for t in (layer.mask, layer.node_scale))
            buf = lambda name, shape, dt=f64: self._buffers.get((l, name), shape, dt)  # noqa: E731
            # sample-major, as csrc/layer.c reads them
            idx, vals = buf("idx", (B, n), np.int32), buf("vals", (B, n, k + 2))
            dv = buf("dv", (B, n, k + 2)) if l > 0 else None
            A = buf("A", (B, n, o)) if reg_on or layer.n_prod else None
            y, mag = buf("y", (B, o)), buf("mag", (n, o))
            nt = self._threads(n * B * (o + (8 if l > 0 else 0)))  # (a basis evaluation ~ 8 edge updates)
            forward.append([n, B, o, K, k, h, knots, *self._basis(l).tables, coef, sb, sp, mask, ns, bias,
                            y, mag, idx, vals, A, dv, l > 0 or not _same_key(input_key, self._input_basis), nt])
            r = np.empty((n, o), f64) if reg_on else None
            if reg_on and not layer.n_prod:
                penalty.append((None, (n * o, mag, self.mu1, self.mu2, self.lamb / B, r)))
            elif reg_on:  # as sparsity_penalty: only the sum nodes' edges are penalised
                ms = layer.n_sum
                sub = (np.empty((n, ms), f64), np.empty((n, ms), f64))
                penalty.append(((mag, r, ms, sub), (n * ms, sub[0], self.mu1, self.mu2, self.lamb / B, sub[1])))
            gx = buf("gx", (B, n)) if l > 0 else None
            dA = buf("dA", (B, n, o)) if layer.n_prod else None  # products: every edge its own gradient
            backward.append((n, B, o, K, k, None, ns, coef, sb, sp, mask, idx, vals, buf("gy", (B, o)),
                             offsets.get((l, "coef"), -1), offsets.get((l, "scale_sp"), -1),
                             offsets.get((l, "scale_base"), -1), offsets.get((l, "bias"), -1), A,
                             None if layer.n_prod else r, dv, gx, dA, nt))
            products.append((layer.n_sum, mask[:, layer.n_sum :] > 0, A, y, ns, bias, r, dA) if layer.n_prod else None)
            h = y
        g_out = np.empty_like(h)
        # each layer's backward reads the gradient of its output: the next layer's gx, or the loss's
        for l in range(len(backward)):
            src = g_out if l == len(backward) - 1 else backward[l + 1][-3]
            backward[l] = (*backward[l][:5], src, *backward[l][6:])
        loss = (B, h.shape[1], h, np.ascontiguousarray(net.out_scale.numpy(), dtype=f64),
                np.ascontiguousarray(net.out_shift.numpy(), dtype=f64), np.ascontiguousarray(self.y, dtype=f64), g_out)
        return {"forward": forward, "penalty": penalty, "loss": loss, "backward": backward[::-1], "input_key": input_key,
                "products": products, "products_reversed": products[::-1], "refresh": refresh}

    @staticmethod
    def _product_forward(item) -> np.ndarray:
        """Product nodes ``node_scale * prod_i phi_ij + bias`` over live edges (the compiled
        pass summed every column): overwrite those columns of ``y``; returns the factors."""
        n_sum, live, A, y, ns, bias, _, _ = item
        factors = np.where(live[None], A[:, :, n_sum:], 1.0)  # (B, n, P)
        y[:, n_sum:] = factors.prod(1) * ns[n_sum:] + bias[n_sum:]
        return factors

    @staticmethod
    def _product_backward(item, factors, g_out: np.ndarray, lamb_on: bool) -> None:
        """Every edge's gradient into ``dA (B, n, o)``: sum columns ``g_out * node_scale``,
        product columns ``g_out * node_scale * prod_{i' != i} phi_i'j`` (prefix and suffix
        products, so a zero factor needs no division), plus the penalty's ``r * sign(A)``."""
        n_sum, live, A, y, ns, bias, r, dA = item
        gY = g_out * ns
        dA[:, :, :n_sum] = gY[:, None, :n_sum]
        pre = np.ones_like(factors)
        np.cumprod(factors[:, :-1], axis=1, out=pre[:, 1:])
        suf = np.ones_like(factors)
        np.cumprod(factors[:, :0:-1], axis=1, out=suf[:, -2::-1])
        dA[:, :, n_sum:] = pre * suf * gY[:, None, n_sum:]
        if lamb_on:
            dA += r[None] * np.sign(A)

    def _compiled_call(self) -> tuple[float, np.ndarray, float, float]:
        """:meth:`__call__` through the compiled loops (``csrc/layer.c``): the same objective, one
        forward and one backward call per layer that touch only the k + 1 nonzero basis
        functions of each sample; the input layer's basis is computed once per plan."""
        key = self._plan_key()
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, self._compiled_plan())
        plan = self._plan[1]
        if plan is None:  # a parameter without contiguous storage of its own: the numpy path
            if self._products:
                raise RuntimeError("compiled objective: a parameter of a product-node network is not a view of its storage")
            self.compiled = False
            return self()
        K = _kernels
        for dst, t in plan["refresh"]:
            np.copyto(dst, t.detach().numpy())
        factors = []
        for args, prod in zip(plan["forward"], plan["products"]):
            K.layer_forward(*args)
            factors.append(self._product_forward(prod) if prod is not None else None)
        plan["forward"][0][-2] = False  # the input layer's basis stays valid until the plan changes
        self._input_basis = plan["input_key"]
        mse = K.mse_grad(*plan["loss"])
        reg = 0.0
        for part, args in plan["penalty"]:
            if part is None:
                reg += K.l1_entropy(*args)
                continue
            mag, r, ms, (mag_s, r_s) = part  # a layer with product nodes: its sum columns only
            r[:, ms:] = 0.0
            if ms:
                mag_s[...] = mag[:, :ms]
                reg += K.l1_entropy(*args)
                r[:, :ms] = r_s
        flat = np.zeros(self.size, dtype=np.float64)
        for args, prod, fac in zip(plan["backward"], plan["products_reversed"], factors[::-1]):
            if prod is not None:
                self._product_backward(prod, fac, args[5], self.lamb > 0)
            K.layer_backward(*args, flat)
        if self._grad_dtype != np.float64:  # a float32 network: its gradient in its dtype
            flat = flat.astype(self._grad_dtype)
        return mse + self.lamb * reg, flat, mse, reg
