"""``KAN``: the scikit-learn-style estimator over a :class:`KANNetwork`.

>>> model = KAN(width=[2, 5, 1], grid=5, k=3, seed=0).fit(X, y, steps=50, lamb=1e-3)
>>> model.predict(X)           # numpy in, numpy out
>>> model.prune()              # nodes whose scores fall below the threshold
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch


from .network import KANNetwork, Trace, format_width, parse_width
from .train import TrainConfig, TrainResult, train

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def default_width(n_inputs: int) -> list[int]:
    """Kolmogorov-Arnold suggests 2n+1 hidden nodes; capped, since pruning removes the excess."""
    return [n_inputs, min(2 * n_inputs + 1, 9), 1]


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA device is available; use 'cpu' or 'auto'")
    return d


class KAN:
    """A Kolmogorov-Arnold Network you can fit, prune, read and snap to a formula.

    Parameters
    ----------
    width : list, e.g. ``[2, 5, 1]``; entries may be ``(n_sum, n_prod)`` for product nodes.
        ``None`` chooses ``[n, min(2n+1, 9), 1]`` from the data at ``fit``.
    grid, k : grid intervals and spline order of every edge.
    seed : everything random (init, mini-batches) derives from it.
    device : ``'cpu'`` (default), ``'cuda'``, or ``'auto'`` (CUDA when available). The CPU is the
        default because KANs of the usual size train far faster there, through the compiled
        objective: 50 LBFGS steps of ``[2, 5, 1]`` on 1000 rows took 0.78 s on the CPU and 7.9 s on
        an H100, where every step is hundreds of tiny kernel launches.
    dtype : ``'float64'`` (default, best for exact formulas) or ``'float32'``.
    """

    def __init__(self, width=None, grid: int = 5, k: int = 3, seed: int = 0, *, noise_scale: float = 0.1,
                 device: str = "cpu", dtype: str = "float64", grid_eps: float = 0.02):
        self.width = width
        self.grid, self.k, self.seed = grid, k, seed
        self.noise_scale, self.device, self.dtype, self.grid_eps = noise_scale, device, dtype, grid_eps
        self.net_: KANNetwork | None = None
        self.feature_names_: list[str] | None = None
        self.target_name_: str = "y"
        self.X_train_ = self.y_train_ = self.X_test_ = self.y_test_ = None
        self.train_result_: TrainResult | None = None
        self.normalized_ = False  # input/output scaling is chosen once, from the first data seen
        if width is not None:
            self._build(width)

    # ----------------------------------------------------------------- construction
    def _build(self, width) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        dev = resolve_device(self.device)
        self.width = [list(w) if isinstance(w, tuple) else w for w in width] if not isinstance(width, str) else width
        self.net_ = KANNetwork(parse_width(width), grid=self.grid, k=self.k, seed=self.seed,
                               noise_scale=self.noise_scale, dtype=DTYPES[self.dtype]).to(dev)

    @property
    def net(self) -> KANNetwork:
        if self.net_ is None:
            raise RuntimeError("the model has no network yet: call fit() first or give a width")
        return self.net_

    @property
    def width_str(self) -> str:
        return format_width(self.net.width)

    def _tensor(self, X) -> torch.Tensor:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.shape[1] != self.net.dims[0]:
            raise ValueError(f"expected {self.net.dims[0]} input columns, got {X.shape[1]}")
        return torch.as_tensor(X, dtype=self.net.dtype, device=self.net.device)

    # ----------------------------------------------------------------- data
    def _set_data(self, X, y) -> None:
        if hasattr(X, "split") and hasattr(X, "inputs"):  # a Dataset
            ds = X
            Xtr, ytr, Xte, yte = ds.split()
            self.feature_names_, self.target_name_ = list(ds.inputs), ds.target
        else:
            if y is None:
                raise ValueError("fit(X, y) needs y, or pass a Dataset from load_csv()")
            Xtr = np.asarray(X, dtype=np.float64)
            Xtr = Xtr[:, None] if Xtr.ndim == 1 else Xtr
            ytr = np.asarray(y, dtype=np.float64).reshape(len(Xtr), -1)
            Xte, yte = Xtr[:0], ytr[:0]
            if not (np.isfinite(Xtr).all() and np.isfinite(ytr).all()):
                raise ValueError("X and y must be finite (no NaN or inf)")
            if self.feature_names_ is None or len(self.feature_names_) != Xtr.shape[1]:
                self.feature_names_ = [f"x{i}" for i in range(Xtr.shape[1])]
        if self.net_ is None:
            self._build(default_width(Xtr.shape[1]))
        if Xtr.shape[1] != self.net.dims[0]:
            raise ValueError(f"the network has {self.net.dims[0]} inputs but the data has {Xtr.shape[1]} columns")
        self.X_train_, self.y_train_ = self._tensor(Xtr), torch.as_tensor(ytr, dtype=self.net.dtype, device=self.net.device).reshape(len(Xtr), -1)
        self.X_test_ = self._tensor(Xte) if len(Xte) else None
        self.y_test_ = torch.as_tensor(yte, dtype=self.net.dtype, device=self.net.device).reshape(len(Xte), -1) if len(Xte) else None

    def _auto_normalize(self) -> None:
        """Scale only inputs/outputs whose magnitudes would stall training; leave the rest raw, so
        that snapped constants read in the data's own units."""
        net = self.net
        self.normalized_ = True
        for x, shift, scale in ((self.X_train_, net.in_shift, net.in_scale), (self.y_train_, net.out_shift, net.out_scale)):
            mean, std = x.mean(0), x.std(0) if len(x) > 1 else torch.ones_like(x[0])
            big = (x.abs().max(0).values > 1e3) | ((std < 1e-3) & (std > 0))
            is_out = scale is net.out_scale
            with torch.no_grad():
                shift[big] = mean[big]
                # Outputs scale the other way: y = net(x) * out_scale + out_shift.
                scale[big] = (std[big] if is_out else 1 / std[big]).clamp_min(1e-300)

    def set_data(self, X, y=None) -> "KAN":
        """Attach training data (a Dataset, or arrays) without training: pruning, snapping and
        scores work on it. Builds the network if no width was given."""
        self._set_data(X, y)
        if not self.normalized_:
            self._auto_normalize()
        return self

    # ----------------------------------------------------------------- state (for study files)
    def get_state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON-able description, tensors) that :meth:`from_state` turns back into this model."""
        meta = {"grid": self.grid, "k": self.k, "seed": self.seed, "noise_scale": self.noise_scale,
                "dtype": self.dtype, "grid_eps": self.grid_eps, "feature_names": self.feature_names_,
                "target_name": self.target_name_, "net": copy.deepcopy(self.net.extra_state())}
        return meta, {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    @classmethod
    def from_state(cls, meta: dict, tensors: dict[str, torch.Tensor], device: str = "cpu") -> "KAN":
        m = cls(None, grid=meta["grid"], k=meta["k"], seed=meta["seed"], noise_scale=meta["noise_scale"],
                device=device, dtype=meta["dtype"], grid_eps=meta["grid_eps"])
        m.net_ = KANNetwork.from_state(meta["net"], tensors).to(resolve_device(device))
        m.width = [list(w) for w in meta["net"]["width"]]
        m.feature_names_ = meta["feature_names"]
        m.target_name_ = meta["target_name"]
        m.normalized_ = True
        return m

    def copy(self) -> "KAN":
        """An independent copy: same network, same data, nothing shared."""
        m = KAN.from_state(*self.get_state(), device=str(self.net.device))
        m.device = self.device
        for name in ("X_train_", "y_train_", "X_test_", "y_test_"):
            setattr(m, name, getattr(self, name))  # data tensors are never modified in place
        return m

    # ----------------------------------------------------------------- sklearn API
    def fit(self, X=None, y=None, *, steps: int = 50, opt: str = "lbfgs", lamb: float = 0.0, lamb_l1: float = 1.0,
            lamb_entropy: float = 1.0, lr: float | None = None, batch: int | None = None, update_grid: bool = True,
            time_limit: float | None = None, callback=None, control=None, lock=None,
            config: TrainConfig | None = None) -> "KAN":
        """Train on a :class:`~kanstudio.Dataset` (its train split) or on arrays ``X (n, d)``, ``y (n,)``;
        with no data, continue training on the data already attached."""
        if X is None:
            self._require_data()
        else:
            self._set_data(X, y)
        if not self.normalized_:
            self._auto_normalize()
        cfg = config or TrainConfig(steps=steps, opt=opt, lr=lr, lamb=lamb, lamb_l1=lamb_l1,
                                    lamb_entropy=lamb_entropy, batch=batch, update_grid=update_grid,
                                    seed=self.seed, time_limit=time_limit)
        self.train_result_ = train(self.net, self.X_train_, self.y_train_, self.X_test_, self.y_test_, cfg,
                                   on_event=callback, control=control, lock=lock)
        return self

    @torch.no_grad()
    def predict(self, X) -> np.ndarray:
        out = self.net(self._tensor(X)).cpu().numpy()
        return out[:, 0] if out.shape[1] == 1 else out

    def score(self, X, y) -> float:
        """R² of the predictions (1 is perfect)."""
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        p = self.predict(X).reshape(len(y), -1)
        ss_res = float(((y - p) ** 2).sum())
        ss_tot = float(((y - y.mean(0)) ** 2).sum())
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else -math.inf)

    # ----------------------------------------------------------------- inspection
    def _require_data(self) -> torch.Tensor:
        if self.X_train_ is None:
            raise RuntimeError("this needs training data: call fit() first")
        return self.X_train_

    def trace(self, X=None) -> Trace:
        return self.net.trace(self._require_data() if X is None else self._tensor(X))

    def edge_scores(self) -> list[np.ndarray]:
        return [s.numpy() for s in self.trace().edge_scale()]

    def node_scores(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(a.numpy(), b.numpy()) for a, b in self.net.node_scores(self._require_data())]

    # ----------------------------------------------------------------- pruning
    def prune(self, node_th: float = 1e-2, edge_th: float | None = None) -> dict:
        """Remove hidden nodes (and, with ``edge_th``, edges) whose scores fall below the thresholds.
        Removed activations leave their mean behind, so predictions barely change."""
        return self.net.auto_prune(self._require_data(), node_th=node_th, edge_th=edge_th)

    def prune_edge(self, l: int, i: int, j: int) -> None:
        self._check_edge(l, i, j)
        self.net.prune_edge(l, i, j, self.trace())

    def prune_node(self, l: int, j: int) -> None:
        self.net.prune_node(l, j, self.trace())

    def refine(self, grid: int) -> "KAN":
        """Grid extension: refit every edge on ``grid`` intervals (its function is kept)."""
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.net.extend_grid(self._require_data(), grid, self.grid_eps)
        self.grid = grid
        return self

    def _check_edge(self, l: int, i: int, j: int) -> None:
        net = self.net
        if not 0 <= l < len(net.layers):
            raise ValueError(f"the network has {len(net.layers)} layers of edges, no layer {l}")
        layer = net.layers[l]
        if not (0 <= i < layer.n_in and 0 <= j < layer.n_out):
            raise ValueError(f"layer {l} has edges {layer.n_in}x{layer.n_out}, no edge ({i}, {j})")

    # ----------------------------------------------------------------- symbolic
    def suggest_symbolic(self, l: int, i: int, j: int, lib=None, topk: int | None = None):
        """Ranked :class:`~kanstudio.core.symbolic.Candidate` list for edge ``i -> j`` of layer ``l``."""
        self._check_edge(l, i, j)
        from . import snap as _snap

        return _snap.suggest(self.net, self._require_data(), l, i, j, lib=lib, topk=topk)

    def snap(self, l: int, i: int, j: int, fn="auto", lib=None):
        """Replace the edge by ``c*f(a*x+b)+d``; ``fn`` is a name, a Candidate, or 'auto' (best)."""
        self._check_edge(l, i, j)
        from . import snap as _snap

        return _snap.snap(self.net, self._require_data(), l, i, j, fn, lib=lib)

    def unsnap(self, l: int, i: int, j: int) -> None:
        self._check_edge(l, i, j)
        self.net.layers[l].unset_symbolic(i, j)

    def auto_symbolic(self, r2_threshold: float = 0.99, lib=None, weight_complexity: float | None = None,
                      network_aware: bool = True) -> dict:
        """Snap every live edge whose best candidate reaches ``r2_threshold``; report the rest."""
        from . import snap as _snap

        return _snap.auto_symbolic(self.net, self._require_data(), self.y_train_, r2_threshold=r2_threshold,
                                   lib=lib, weight_complexity=weight_complexity, network_aware=network_aware)

    def formula(self, X_test=None, y_test=None, *, simplify: bool = True, exact_constants: bool = True):
        """The network as a :class:`~kanstudio.core.formula.FormulaResult` in the feature names,
        scored on ``(X_test, y_test)`` (default: the test split, else the training data)."""
        from .formula import build_formula

        return build_formula(self, X_test, y_test, simplify=simplify, exact_constants=exact_constants)

    def __repr__(self) -> str:
        w = self.width_str if self.net_ is not None else "auto"
        return f"KAN(width=[{w}], grid={self.grid}, k={self.k}, seed={self.seed})"
