"""What the search tries, in what order: independent tasks (a view of the data and a network
shape), so that they can run one after another with an early stop, or all at once on a cluster.

Order: the two cheapest shapes on the data as given (an additive law, a product of
one-variable factors: most laws of a few variables are one of these and take under a second),
then the shapes the structure tests point to (on the simplified view, with groups of inputs
wired to their own hidden nodes), then the general shapes as a fallback.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import format_width, parse_width
from .structure import Structure
from .views import View


@dataclass(frozen=True)
class Task:
    """One attempt: train ``width`` on ``view`` of the data (``masks``: edges ``(layer, i, j)``
    removed before training, so that a group of inputs feeds only its own hidden node)."""

    label: str
    view: View
    width: tuple
    masks: tuple = ()
    seed_offset: int = 0

    @property
    def key(self):
        return (self.view.columns, self.view.factor, self.view.outer, self.width, self.masks)


def _w(width) -> tuple:
    return tuple(tuple(w) for w in parse_width(width))


def base_shapes(n: int, hidden: int | None = None) -> list[list]:
    """The fixed shapes for ``n`` inputs, cheapest first: ``[n, 1]`` (additive law), ``[n, 1x]``
    (a product of one-variable factors, via a multiplication node as in KAN 2.0), ``[n, 1, 1]``
    (a function of a sum), ``[n, 2, 1x]`` (a product of two sums), the general ``[n, h, 1]``."""
    out = [[n, 1]]
    if n > 1:
        out.append([n, (0, 1)])
    out.append([n, 1, 1])
    if n > 2:
        out.append([n, 2, (0, 1)])
    out.append([n, hidden or min(2 * n + 1, 7), 1])
    return out


ONE_D = ("1d",)  # the width of a direct 1-D search task (search_1d), not a network
TERMS = ("terms",)  # the width of a term search task (term_search: sums of products), not a network
RATIOS = ("ratios",)  # the width of a ratio search task (ratio_search: ratios of two such sums)
DIRECT = {ONE_D: "1-D search", TERMS: "term search", RATIOS: "ratio search"}


def task_name(width) -> str:
    """``[2,1x]`` for a network, or the direct search's name."""
    w = tuple(width)
    return DIRECT[w] if w in DIRECT else format_width([tuple(x) for x in w])


def _direct_task(view: View, width: tuple, why: str) -> Task:
    on = "" if view.is_identity else f" on {view.describe()}"
    return Task(f"[{DIRECT[width]}]{on}" + (f"  <- {why}" if why else ""), view, width)


def one_d_task(view: View, why: str = "") -> Task:
    return _direct_task(view, ONE_D, why)


def terms_task(view: View, why: str = "") -> Task:
    return _direct_task(view, TERMS, why)


def ratio_tasks(tasks: list[Task]) -> list[Task]:
    """A ratio search on each view that has a term search among ``tasks`` (a few seconds each,
    so after every cheaper attempt has had its turn)."""
    return [_direct_task(t.view, RATIOS, "") for t in tasks if tuple(t.width) == TERMS]


def shape_tasks(view: View, widths, why: str = "") -> list[Task]:
    # one column left: the direct 1-D search first (a few hundred ms, and it finds compositions
    # that a [1,1,1] network reaches only from a lucky start)
    out = [one_d_task(view, why)] if len(view.columns) == 1 else []
    for w in widths:
        ww = _w(w)
        out.append(Task(_label(view, ww, why), view, ww))
    return out


def _label(view: View, width, why: str = "", masks=()) -> str:
    if tuple(width) in DIRECT:
        return _direct_task(view, tuple(width), why).label
    w = f"[{format_width([tuple(x) for x in width])}]" + (" (grouped)" if masks else "")
    on = "" if view.is_identity else f" on {view.describe()}"
    return f"{w}{on}" + (f"  <- {why}" if why else "")


def _grouped(view: View, groups: list[list[int]], product: bool, why: str, nodes_per_group=1) -> Task:
    """``[m, k, 1]`` or ``[m, k, 1x]`` with each group of inputs wired only to its own hidden
    node(s): ``sum_c psi_c(sum_{i in c} phi_ci(x_i))`` or the product of the ``psi_c``."""
    m = len(view.columns)
    nodes, masks = [], []
    for c, g in enumerate(groups):
        count = 1 if (product or len(g) == 1) else nodes_per_group
        nodes += [set(g)] * count
    for j, g in enumerate(nodes):
        masks += [(0, i, j) for i in range(m) if i not in g]
    width = _w([m, len(nodes), (0, 1) if product else 1])
    return Task(_label(view, width, why, masks), view, width, tuple(masks))


def structured_tasks(st: Structure, X, y) -> list[Task]:
    """Tasks for what ``st`` found, most specific first."""
    v = st.view
    m = len(v.columns)
    out: list[Task] = []
    why = "; ".join(s.label for s in st.steps) if st.steps else ""
    if m == 1:  # one variable: chains of one-variable functions are cheap, go three deep
        out += shape_tasks(v, [[1, 1], [1, 1, 1], [1, 1, 1, 1]], why)
    else:
        if st.multiplicative:
            g = st.multiplicative
            sep = "product of " + " * ".join("f(" + ", ".join(v.names[i] for i in grp) + ")" for grp in g)
            why2 = f"{why}; {sep}" if why else sep
            if all(len(grp) == 1 for grp in g):
                out += shape_tasks(v, [[m, (0, 1)]], why2)
            # each factor a composition psi(phi(.)) of its group (u/sqrt(1 - u^2) = 1/sqrt(1/u^2 - 1))
            out.append(_grouped(v, g, True, why2))
            logv = v.with_outer("exp", "log y is a sum")
            if logv.target_valid(X, y):
                out += [_grouped(logv, g, False, why2 + "; log y", 2)] if any(len(grp) > 1 for grp in g) \
                    else shape_tasks(logv, [[m, 1]], why2 + "; log y")
        if st.additive:
            g = st.additive
            sep = "sum of " + " + ".join("f(" + ", ".join(v.names[i] for i in grp) + ")" for grp in g)
            why2 = f"{why}; {sep}" if why else sep
            if all(len(grp) == 1 for grp in g):
                out += shape_tasks(v, [[m, 1]], why2)
            out.append(_grouped(v, g, False, why2, 2))
        if st.steps:
            out.insert(0, terms_task(v, why))  # well under a second; exact whenever the law is of its form
            out += shape_tasks(v, base_shapes(m)[:3], why)
    for alt in st.alternatives:
        alt_why = "alternative: " + "; ".join(alt.notes)
        out += ([terms_task(alt, alt_why)] if len(alt.columns) > 1 else []) + \
            shape_tasks(alt, base_shapes(len(alt.columns))[:3], alt_why)
    return [t for t in out if t.view.valid_on(X) and t.view.target_valid(X, y)]


def dedupe(tasks: list[Task], seen: set | None = None) -> list[Task]:
    seen = set() if seen is None else seen
    out = []
    for t in tasks:
        if t.key not in seen:
            seen.add(t.key)
            out.append(t)
    return out


def finite_view(view: View, X: np.ndarray, y: np.ndarray) -> bool:
    return view.valid_on(X) and view.target_valid(X, y)
