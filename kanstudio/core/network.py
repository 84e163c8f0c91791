"""The stack of KAN layers: forward pass, per-edge/node scores, pruning that preserves outputs.

Width is a list with one entry per node layer, inputs first, e.g. ``[2, 5, 1]``. An entry may
be ``(n_sum, n_prod)`` to add product nodes, e.g. ``[4, 2, (0, 1)]`` multiplies at the output.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layer import KANLayer

Width = list  # list[int | tuple[int, int]]


def parse_width(width) -> list[tuple[int, int]]:
    """Normalise a width spec to ``[(n_sum, n_prod), ...]``; accepts ints, pairs and '2+1x' strings.

    >>> parse_width([2, 5, (0, 1)])
    [(2, 0), (5, 0), (0, 1)]
    >>> parse_width("2,3+1x,1")
    [(2, 0), (3, 1), (1, 0)]
    """
    if isinstance(width, str):
        width = [w.strip() for w in width.split(",") if w.strip()]
    out = []
    for w in width:
        if isinstance(w, str):
            s = w.lower().replace(" ", "")
            n_sum, n_prod = 0, 0
            for part in s.split("+"):
                if part.endswith(("x", "*", "p")):
                    n_prod += int(part[:-1] or 1)
                else:
                    n_sum += int(part)
            out.append((n_sum, n_prod))
        elif isinstance(w, (tuple, list)):
            out.append((int(w[0]), int(w[1])))
        else:
            out.append((int(w), 0))
    if len(out) < 2:
        raise ValueError(f"width needs at least an input and an output layer, got {width!r}")
    if any(s < 0 or p < 0 or s + p < 1 for s, p in out):
        raise ValueError(f"every layer needs at least one node, got {width!r}")
    if out[0][1]:
        raise ValueError("the input layer cannot have product nodes")
    return out


def format_width(width: list[tuple[int, int]]) -> str:
    return ",".join(str(s) if not p else (f"{s}+{p}x" if s else f"{p}x") for s, p in width)


@dataclass
class Trace:
    """One forward pass with everything the views and scores need (all detached, CPU).

    ``inputs[l] (batch, n_in_l)`` is what layer l saw, ``acts[l] (batch, n_in_l, n_out_l)`` its
    edge activations, ``output (batch, n_out)``.
    """

    inputs: list[torch.Tensor]
    acts: list[torch.Tensor]
    output: torch.Tensor

    def edge_scale(self) -> list[torch.Tensor]:
        """Mean |phi| per edge: ``(n_in_l, n_out_l)`` per layer."""
        return [a.abs().mean(0) for a in self.acts]


class KANNetwork(nn.Module):
    def __init__(self, width, grid: int = 5, k: int = 3, seed: int = 0, noise_scale: float = 0.1,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.width = parse_width(width)
        self.seed = seed
        g = torch.Generator().manual_seed(seed)
        dims = [s + p for s, p in self.width]
        self.layers = nn.ModuleList(
            KANLayer(dims[l], dims[l + 1], grid=grid, k=k, n_prod=self.width[l + 1][1],
                     noise_scale=noise_scale, generator=g, dtype=dtype)
            for l in range(len(dims) - 1)
        )
        # Affine maps in and out: identity unless the data's magnitudes need them (see model.fit).
        self.register_buffer("in_shift", torch.zeros(dims[0], dtype=dtype))
        self.register_buffer("in_scale", torch.ones(dims[0], dtype=dtype))
        self.register_buffer("out_shift", torch.zeros(dims[-1], dtype=dtype))
        self.register_buffer("out_scale", torch.ones(dims[-1], dtype=dtype))

    @property
    def dims(self) -> list[int]:
        return [s + p for s, p in self.width]

    @property
    def dtype(self) -> torch.dtype:
        return self.in_scale.dtype

    @property
    def device(self) -> torch.device:
        return self.in_scale.device

    # ----------------------------------------------------------------- forward
    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        # Same input tensor -> same output tensor, so the first layer's basis cache can hit.
        key = (id(x), x._version, self.in_shift._version, self.in_scale._version)
        c = getattr(self, "_norm_cache", None)
        if c is not None and c[0] == key and c[1] is x and not x.requires_grad:
            return c[2]
        h = (x - self.in_shift) * self.in_scale
        if not x.requires_grad:
            self._norm_cache = (key, x, h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize_input(x)
        for layer in self.layers:
            h = layer(h)
        return h * self.out_scale + self.out_shift

    def forward_with_acts(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Output and each layer's ``(batch, n_in, n_out)`` activations, with gradients (for the
        sparsity penalty)."""
        h = self.normalize_input(x)
        acts = []
        for layer in self.layers:
            h, a = layer(h, return_acts=True)
            acts.append(a)
        return h * self.out_scale + self.out_shift, acts

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Trace:
        h = self.normalize_input(x.to(self.device, self.dtype))
        inputs, acts = [], []
        for layer in self.layers:
            inputs.append(h.detach().cpu())
            h, a = layer(h, return_acts=True)
            acts.append(a.detach().cpu())
        return Trace(inputs, acts, (h * self.out_scale + self.out_shift).cpu())

    # ----------------------------------------------------------------- scores
    @torch.no_grad()
    def edge_scores(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.trace(x).edge_scale()

    @torch.no_grad()
    def node_scores(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each hidden node layer: (max incoming |phi|, max outgoing |phi|), each ``(n,)``."""
        s = self.edge_scores(x)
        return [(s[l].max(0).values, s[l + 1].max(1).values) for l in range(len(s) - 1)]

    def live_edges(self) -> list[torch.Tensor]:
        return [layer.mask > 0 for layer in self.layers]

    def live_nodes(self) -> list[torch.Tensor]:
        """Per node layer, ``(n,)`` bool: live when reachable from an input and reaching an output."""
        masks = [m.cpu() for m in self.live_edges()]
        fwd = [torch.ones(self.dims[0], dtype=torch.bool)]
        for m in masks:
            fwd.append(m[fwd[-1]].any(0) if fwd[-1].any() else torch.zeros(m.shape[1], dtype=torch.bool))
        bwd = [torch.ones(self.dims[-1], dtype=torch.bool)]
        for m in reversed(masks):
            bwd.insert(0, m[:, bwd[0]].any(1) if bwd[0].any() else torch.zeros(m.shape[0], dtype=torch.bool))
        nodes = [f & b for f, b in zip(fwd, bwd)]
        nodes[0], nodes[-1] = fwd[0].clone(), bwd[-1].clone()  # inputs and outputs always shown
        return nodes

    def n_live_edges(self) -> int:
        return int(sum(int(m.sum()) for m in self.live_edges()))

    # ----------------------------------------------------------------- pruning
    @torch.no_grad()
    def prune_edge(self, l: int, i: int, j: int, trace: Trace) -> None:
        """Remove edge ``i -> j`` of layer ``l``, folding its mean output over ``trace`` into
        node j (bias for a sum node, scale for a product node) so predictions barely move."""
        layer = self.layers[l]
        if layer.mask[i, j] == 0:
            return
        mean = trace.acts[l][:, i, j].mean().to(layer.bias.dtype)
        if layer.is_prod(j):
            layer.node_scale[j] *= mean
        else:
            layer.bias[j] += mean
        layer.mask[i, j] = 0.0
        layer.unset_symbolic(i, j)

    @torch.no_grad()
    def prune_node(self, l: int, j: int, trace: Trace) -> None:
        """Remove hidden node ``j`` of node layer ``l`` (1 .. depth-1): its outgoing edges become
        their means (folded downstream); its incoming edges then feed nothing and are dropped."""
        if l <= 0 or l >= len(self.dims) - 1:
            raise ValueError(f"only hidden nodes can be pruned (node layers 1..{len(self.dims) - 2}), got layer {l}")
        if not 0 <= j < self.dims[l]:
            raise ValueError(f"node layer {l} has {self.dims[l]} nodes, no node {j}")
        for k in range(self.dims[l + 1]):
            self.prune_edge(l, j, k, trace)
        incoming = self.layers[l - 1]
        incoming.mask[:, j] = 0.0
        for i in range(incoming.n_in):
            incoming.unset_symbolic(i, j)

    @torch.no_grad()
    def auto_prune(self, x: torch.Tensor, node_th: float = 1e-2, edge_th: float | None = None) -> dict:
        """Prune hidden nodes whose incoming or outgoing score is below ``node_th`` and, when
        ``edge_th`` is given, edges whose mean |phi| is below it. Returns what was removed."""
        removed_nodes, removed_edges = [], []
        for l in range(1, len(self.dims) - 1):
            # Re-trace per layer: pruning layer l changes what layer l+1 sees.
            trace = self.trace(x)
            scale = trace.edge_scale()
            inc, out = scale[l - 1].max(0).values, scale[l].max(1).values
            live = self.live_nodes()[l]
            for j in range(self.dims[l]):
                if live[j] and (inc[j] < node_th or out[j] < node_th):
                    self.prune_node(l, j, trace)
                    removed_nodes.append((l, j))
        if edge_th is not None:
            trace = self.trace(x)
            for l, s in enumerate(trace.edge_scale()):
                for i, j in (s < edge_th).nonzero().tolist():
                    if self.layers[l].mask[i, j] > 0:
                        self.prune_edge(l, i, j, trace)
                        removed_edges.append((l, i, j))
        return {"nodes": removed_nodes, "edges": removed_edges}

    # ----------------------------------------------------------------- grids
    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, eps: float = 0.02) -> None:
        h = self.normalize_input(x)
        for layer in self.layers:
            layer.update_grid(h, eps)
            h = layer(h)

    @torch.no_grad()
    def extend_grid(self, x: torch.Tensor, grid: int, eps: float = 0.02) -> None:
        h = self.normalize_input(x)
        for layer in self.layers:
            layer.extend(h, grid, eps)
            h = layer(h)

    # ----------------------------------------------------------------- state
    def extra_state(self) -> dict:
        return {"width": [list(w) for w in self.width], "seed": self.seed,
                "layers": [layer.extra_state_dict() for layer in self.layers],
                "dtype": str(self.dtype).replace("torch.", "")}

    def load_full_state(self, extra: dict, tensors: dict[str, torch.Tensor]) -> None:
        for l, (layer, st) in enumerate(zip(self.layers, extra["layers"])):
            layer.load_extra_state_dict(st)
            layer.resize_for_state(tensors, f"layers.{l}.")
        self.load_state_dict(tensors)

    @classmethod
    def from_state(cls, extra: dict, tensors: dict[str, torch.Tensor]) -> "KANNetwork":
        first = extra["layers"][0]
        net = cls([tuple(w) for w in extra["width"]], grid=first["G"], k=first["k"], seed=extra["seed"],
                  dtype=getattr(torch, extra.get("dtype", "float64")))
        net.load_full_state(extra, tensors)
        return net

    def clone(self) -> "KANNetwork":
        """An independent copy (same device and dtype)."""
        return KANNetwork.from_state(self.extra_state(), {k: v.clone() for k, v in self.state_dict().items()}).to(self.device)
