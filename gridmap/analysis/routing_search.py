"""Iterated local search for the orienteering problem behind :func:`gridmap.analysis.routing.plan_route`.

One vehicle leaves node 0 (the start) and reaches node ``end`` (the start again, or a free
end) within an integer time budget; every node in between is a candidate stop with a
prize. The search picks and orders stops to collect the most prize. It is the classic
iterated local search for orienteering, written so that every move is evaluated for all
positions (and all candidate stops) at once with numpy:

* **fill**: insert stops while any fits, best ``prize / added_time ** alpha`` first;
* **shorten**: exact best-improvement 2-opt (prefix sums make it exact on asymmetric
  times) and or-opt (move a run of 1-3 stops elsewhere, either way round);
* **replace**: swap a visited stop for an unvisited one with a larger prize when the
  route still fits the budget;
* **perturb**: drop a run of stops or some scattered ones, refill without them, and
  keep the result with record-to-record acceptance.

The work is budgeted in *rounds* (perturbations), not in seconds, so a busy machine gets
the same route, only later; a wall-clock deadline is the safety net, and the search
stops early once it has not improved for a number of rounds.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

#: Exponents of the added time in the insertion ratio ``prize / added ** alpha``.
ALPHAS = (0.5, 1.0, 1.5, 2.0)
#: Record-to-record margin: keep working on routes within 1 % of the best prize.
RECORD_MARGIN = 0.01
#: At most this share of the route's stops is dropped in one perturbation.
RUIN_SHARE = 1 / 3
#: Random spread of the prizes while refilling a perturbed route (diversifies the search).
REFILL_NOISE = 0.2
#: Longest run of stops or-opt moves.
OR_OPT_MAX = 3
_BIG = np.iinfo(np.int64).max // 8
_POWERS = {0.5: np.sqrt, 1.0: lambda x: x, 1.5: lambda x: x * np.sqrt(x), 2.0: np.square}


class OrienteeringSearch:
    """Iterated local search over one route; all times are the caller's integer units.

    Parameters
    ----------
    cost : numpy.ndarray
        ``(k + 2, k + 2)`` int64; ``cost[i, j]`` is the time from leaving ``i``'s
        predecessor edge to ``j``: travel ``i -> j`` plus the service at ``i``. Node 0 is
        the start, node ``k + 1`` the end; ``cost[:, 0]`` is never used.
    prize : numpy.ndarray
        ``(k + 2,)`` prizes, 0 for the start and the end.
    budget : int
        Largest allowed route time.
    max_stops : int, optional
        Visit at most this many stops.
    seed : int, default 0
        Seed of the random perturbations: same inputs, same seed, same rounds -> same route.
    fetch : callable, optional
        ``fetch(nodes) -> (rows, cols)``, ``cost[nodes, :]`` and ``cost[:, nodes].T``, for
        costs computed on demand: then only row 0 and the end's column of ``cost`` need
        to be known at first, and a stop's row and column are fetched the first time it
        goes on a route (every move only reads the rows and columns of route stops).
    """

    def __init__(self, cost: np.ndarray, prize: np.ndarray, budget: int, max_stops: int | None = None,
                 seed: int = 0, fetch: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None):
        self.c = np.array(cost, dtype=np.int64, order="C")
        self.cT = np.ascontiguousarray(self.c.T)
        self.fetch = fetch
        self.known = np.ones(self.c.shape[0], dtype=bool)
        if fetch is not None:
            self.known[1:-1] = False
        self.prize = np.asarray(prize, dtype="float64")
        self.budget = int(budget)
        self.end = self.c.shape[0] - 1
        self.limit = self.end - 1 if max_stops is None else min(int(max_stops), self.end - 1)
        self.rng = np.random.default_rng(seed)
        self.rounds = 0
        self.stalled = False

    # ------------------------------------------------------------------ basics

    def ready(self, nodes: Sequence[int] | np.ndarray) -> None:
        """Make sure the rows and columns of ``nodes`` are known (fetch those that are not)."""
        nodes = np.asarray(nodes, dtype=np.intp)
        new = np.unique(nodes[~self.known[nodes]])
        if not len(new):
            return
        rows, cols = self.fetch(new)
        self.c[new, :] = rows
        self.c[:, new] = cols.T
        self.cT[:, new] = self.c[new, :].T
        self.cT[new, :] = self.c[:, new].T
        self.known[new] = True

    def seq(self, route: Sequence[int]) -> np.ndarray:
        return np.array([0, *route, self.end], dtype=np.int64)

    def time(self, route: Sequence[int]) -> int:
        s = self.seq(route)
        return int(self.c[s[:-1], s[1:]].sum())

    def value(self, route: Sequence[int]) -> float:
        return float(self.prize[list(route)].sum()) if len(route) else 0.0

    def better(self, new: Sequence[int], old: Sequence[int]) -> bool:
        """More prize, or the same prize in less time."""
        vn, vo = self.value(new), self.value(old)
        return vn > vo + 1e-9 or (abs(vn - vo) <= 1e-9 and self.time(new) < self.time(old))

    def _free(self, route: Sequence[int], exclude: Sequence[int] = ()) -> np.ndarray:
        free = np.ones(self.end, dtype=bool)
        free[0] = False
        free[list(route)] = False
        free[list(exclude)] = False
        return np.flatnonzero(free)

    # ------------------------------------------------------------------ moves

    def fill(self, route: list[int], alpha: float = 1.0, *, noise: float = 0.0,
             exclude: Sequence[int] = ()) -> list[int]:
        """Insert stops while any fits, best prize per (added time ** alpha) first."""
        if len(route) >= self.limit:
            return route
        c, cT = self.c, self.cT
        s = self.seq(route)
        slack = self.budget - int(c[s[:-1], s[1:]].sum())
        left = self._free(route, exclude)
        if not len(left) or slack <= 0:
            return route
        # added time of each candidate (column) on each edge of the route (row)
        delta = _block(c, s[:-1], left) + _block(cT, s[1:], left) - c[s[:-1], s[1:]][:, None]
        if not (delta.min(axis=0) <= slack).any():
            return route
        weight = self.prize[left]
        if noise:
            weight = weight * self.rng.uniform(1.0 - noise, 1.0 + noise, len(left))
        power = _POWERS[alpha]
        s = s.tolist()
        taken = np.zeros(len(left), dtype=bool)
        while len(s) - 2 < self.limit:
            best_delta = delta.min(axis=0)
            ok = (best_delta <= slack) & ~taken
            if not ok.any():
                break
            ratio = np.where(ok, weight / power(np.maximum(best_delta, 1)), -np.inf)
            k = int(np.argmax(ratio))
            pos = int(np.argmin(delta[:, k]))
            node, a, b = int(left[k]), s[pos], s[pos + 1]
            self.ready([node])
            slack -= int(delta[pos, k])
            via_a = cT[left, a] + c[left, node] - c[a, node]
            via_b = cT[left, node] + c[left, b] - c[node, b]
            delta = np.concatenate([delta[:pos], via_a[None], via_b[None], delta[pos + 1:]])
            taken[k] = True
            s.insert(pos + 1, node)
        return s[1:-1]

    def shorten(self, route: list[int]) -> list[int]:
        """Best-improvement 2-opt and or-opt until neither saves time."""
        c, cT = self.c, self.cT
        for _ in range(50 * max(len(route), 1)):
            n = len(route)
            if n < 2:
                break
            s = np.array([0, *route, self.end], dtype=np.int64)
            fwd = c[s[:-1], s[1:]]                 # edge e: s[e] -> s[e + 1]
            bwd = c[s[1:], s[:-1]]                 # the same edge driven backwards
            F = np.concatenate([[0], np.cumsum(fwd)])
            B = np.concatenate([[0], np.cumsum(bwd)])
            # 2-opt: reverse s[p..q], 1 <= p < q <= n
            p, q = _pairs(n)
            gain2 = (fwd[p - 1] + fwd[q] + (F[q] - F[p])
                     - c[s[p - 1], s[q]] - c[s[p], s[q + 1]] - (B[q] - B[p]))
            i2 = int(np.argmax(gain2))
            best_gain, best_move = int(gain2[i2]), ("2opt", int(p[i2]), int(q[i2]))
            # or-opt: move s[i..j] (1 to OR_OPT_MAX stops) onto edge e (not touching it),
            # forwards or reversed; all runs and edges in one go
            i, j, touching, single = _runs(n)
            first, last = s[i], s[j]
            inner_f = F[j] - F[i]
            inner_b = B[j] - B[i]
            save = fwd[i - 1] + fwd[j] + inner_f - c[s[i - 1], s[j + 1]]
            gain_f = (save - inner_f + fwd[:, None]) - _block(c, s[:-1], first) - _block(cT, s[1:], last)
            gain_r = (save - inner_b + fwd[:, None]) - _block(c, s[:-1], last) - _block(cT, s[1:], first)
            gain_f[touching] = -_BIG
            gain_r[touching | single] = -_BIG
            kf, kr = int(np.argmax(gain_f)), int(np.argmax(gain_r))
            gf, gr = int(gain_f.flat[kf]), int(gain_r.flat[kr])
            if max(gf, gr) > best_gain:
                rev = gr > gf
                edge, run = divmod(kr if rev else kf, len(i))
                best_gain = max(gf, gr)
                best_move = ("or", int(i[run]), int(j[run] - i[run] + 1), int(edge), rev)
            if best_gain <= 0:
                break
            if best_move[0] == "2opt":
                _, pp, qq = best_move
                route = route[:pp - 1] + route[pp - 1:qq][::-1] + route[qq:]
            else:
                _, ii, L, edge, rev = best_move
                run = route[ii - 1: ii - 1 + L]
                if rev:
                    run = run[::-1]
                rest = route[:ii - 1] + route[ii - 1 + L:]
                at = edge if edge < ii else edge - L  # edge e runs s[e] -> s[e+1]; insert after s[e]
                route = rest[:at] + run + rest[at:]
        return route

    def replace(self, route: list[int], exclude: Sequence[int] = ()) -> list[int] | None:
        """The best swap of a visited stop for an unvisited one with a larger prize that fits, or None."""
        n = len(route)
        if n == 0:
            return None
        c, cT = self.c, self.cT
        left = self._free(route, exclude)
        if not len(left):
            return None
        route_prize = self.prize[route]
        left = left[self.prize[left] > route_prize.min() + 1e-9]
        if not len(left):
            return None
        s = np.array([0, *route, self.end], dtype=np.int64)
        fwd = c[s[:-1], s[1:]]
        used = int(fwd.sum())
        ins = _block(c, s[:-1], left) + _block(cT, s[1:], left) - fwd[:, None]     # (edge, candidate)
        pos = np.arange(1, n + 1)
        save = fwd[pos - 1] + fwd[pos] - c[s[pos - 1], s[pos + 1]]          # dropping route[pos-1]
        bridge = (_block(c, s[pos - 1], left) + _block(cT, s[pos + 1], left)
                  - c[s[pos - 1], s[pos + 1]][:, None])
        # cheapest insertion on an edge that survives dropping route[pos - 1], i.e. on
        # edges before pos - 1 or after pos: prefix and suffix minima over the edges
        before = np.minimum.accumulate(ins, axis=0)                 # before[e] = min over edges <= e
        after = np.minimum.accumulate(ins[::-1], axis=0)[::-1]      # after[e] = min over edges >= e
        big = np.full((1, len(left)), _BIG, dtype=np.int64)
        other = np.minimum(np.concatenate([big, before[:n - 1]]),   # edges <= pos - 2
                           np.concatenate([after[2:], big]))         # edges >= pos + 1
        new_time = used - save[:, None] + np.minimum(other, bridge)
        gain = self.prize[left][None, :] - route_prize[:, None]
        ok = (new_time <= self.budget) & (gain > 1e-9)
        if not ok.any():
            return None
        # most prize gained; among equals the shortest route
        score = np.where(ok, gain - new_time * (1e-12 / max(self.budget, 1)), -np.inf)
        at, k = np.unravel_index(int(np.argmax(score)), score.shape)
        node = int(left[k])
        self.ready([node])
        rest = route[:at] + route[at + 1:]
        r = np.array([0, *rest, self.end], dtype=np.int64)
        place = c[r[:-1], node] + c[node, r[1:]] - c[r[:-1], r[1:]]
        e = int(np.argmin(place))
        return rest[:e] + [node] + rest[e:]

    def improve(self, route: list[int], alpha: float, *, noise: float = 0.0,
                exclude: Sequence[int] = ()) -> list[int]:
        """Shorten, fill, swap for larger prizes, until none of them helps."""
        route = self.shorten(route)
        for _ in range(4 * self.end):
            route = self.fill(route, alpha, noise=noise, exclude=exclude)
            swapped = self.replace(route, exclude)
            if swapped is not None:
                route = self.shorten(swapped)
                continue
            shorter = self.shorten(route)
            if self.time(shorter) >= self.time(route):
                break
            grown = self.fill(shorter, alpha, noise=noise, exclude=exclude)
            route = shorter
            if len(grown) == len(shorter):
                break
            route = grown
        return route

    # ------------------------------------------------------------------ the search

    def construct(self) -> list[int]:
        """Best of a greedy fill and local search for each insertion exponent."""
        best: list[int] = []
        self.best_alpha = 1.0
        for alpha in ALPHAS:
            route = self.improve(self.fill([], alpha), alpha)
            if self.better(route, best):
                best, self.best_alpha = route, alpha
        return best

    def perturb(self, route: list[int]) -> tuple[list[int], list[int]]:
        """Drop a run of stops, or a few scattered ones; returns the rest and the dropped."""
        route = list(route)
        k = int(self.rng.integers(1, max(2, int(len(route) * RUIN_SHARE)) + 1))
        k = min(k, len(route))
        if self.rng.random() < 0.5:
            first = int(self.rng.integers(0, len(route) - k + 1))
            removed = route[first: first + k]
            del route[first: first + k]
        else:
            removed = [route.pop(int(self.rng.integers(len(route)))) for _ in range(k)]
        return route, removed

    def run(self, rounds: int, *, deadline: float | None = None, stall_rounds: int | None = None,
            min_rounds: int = 0, initial: Sequence[int] | None = None) -> list[int]:
        """Best route after at most ``rounds`` perturbations.

        Stops earlier after ``stall_rounds`` rounds in a row without a better route, or at
        ``deadline`` (a ``time.perf_counter()`` value) once ``min_rounds`` are done.
        """
        best = self.construct()
        if initial is not None:
            self.ready(list(initial))
        if initial is not None and self.better(list(initial), best):
            best = list(initial)
        current = list(best)
        since = 0
        self.rounds = 0
        self.stalled = False
        while current and self.rounds < rounds:
            if deadline is not None and self.rounds >= min_rounds and time.perf_counter() >= deadline:
                break
            if stall_rounds is not None and since >= stall_rounds:
                self.stalled = True
                break
            self.rounds += 1
            since += 1
            route, removed = self.perturb(current)
            alpha = self.best_alpha if self.rng.random() < 0.5 else float(self.rng.choice(ALPHAS))
            # refill without the dropped stops first (else greedy puts them right back),
            # with noisy prizes, then let them compete again
            route = self.improve(route, alpha, noise=REFILL_NOISE, exclude=removed)
            route = self.improve(route, alpha)
            if self.better(route, current) or self.value(route) >= (1.0 - RECORD_MARGIN) * self.value(best):
                current = route
                if self.better(current, best):
                    best = list(current)
                    since = 0
        return best


def _block(matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[np.ix_(rows, cols)]``, a few times faster for small blocks of a big matrix."""
    return matrix.take(rows, axis=0).take(cols, axis=1)


_PAIRS: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_RUNS: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}


def _runs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Or-opt runs of a route of ``n`` stops: first and last positions (1-based in the
    sequence), which edges touch each run (those are no place to put it), and which runs
    are single stops (reversing them changes nothing)."""
    if n not in _RUNS:
        i = np.concatenate([np.arange(1, n - L + 2) for L in range(1, min(OR_OPT_MAX, n - 1) + 1)])
        lengths = np.concatenate([np.full(n - L + 1, L) for L in range(1, min(OR_OPT_MAX, n - 1) + 1)])
        j = i + lengths - 1
        e = np.arange(n + 1)[:, None]
        touching = (e >= i[None, :] - 1) & (e <= j[None, :])
        single = np.broadcast_to((lengths == 1)[None, :], touching.shape)
        _RUNS[n] = (i, j, touching, single)
    return _RUNS[n]


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All positions 1 <= p < q <= n of a route sequence, for 2-opt."""
    if n not in _PAIRS:
        p, q = np.triu_indices(n, k=1)
        _PAIRS[n] = (p + 1, q + 1)
    return _PAIRS[n]
