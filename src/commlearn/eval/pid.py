"""Partial information decomposition (PID) of a task's information between two modalities, in bits.

Definition (BROJA: Bertschinger, Rauh, Olbrich, Jost & Ay, "Quantifying unique information", Entropy 2014;
the estimator of Liang et al., "Quantifying & Modeling Multimodal Interactions", NeurIPS 2023). Given the
joint distribution ``p(x1, x2, y)`` of two discrete modalities and a discrete label, let ``Δ_p`` be the set
of distributions ``q(x1, x2, y)`` with the same ``(x1, y)`` and ``(x2, y)`` marginals as ``p`` and
``q* = argmin_{q ∈ Δ_p} I_q(X1, X2; Y)``. Then

* redundancy ``R  = I(X1; Y) − I_q*(X1; Y | X2)``,
* unique      ``U1 = I_q*(X1; Y | X2)`` and ``U2 = I_q*(X2; Y | X1)``,
* synergy     ``S  = I_p(X1, X2; Y) − I_q*(X1, X2; Y)``,

and ``R + U1 + U2 + S = I_p(X1, X2; Y)`` (``total``). ``I(Xi; Y)`` is the same under every ``q ∈ Δ_p``.
Reference values with uniform input bits: ``y = x1 XOR x2`` gives S = 1; ``y = x1 = x2`` gives R = 1;
``y = x1`` with ``x2`` independent gives U1 = 1; ``y = (x1, x2)`` gives U1 = U2 = 1; ``y = x1 AND x2`` gives
R ≈ 0.311, U1 = U2 = 0, S = 0.5.

Solver. Because ``q(y)`` is fixed on ``Δ_p``, minimising ``I_q(X1, X2; Y)`` is minimising
``−H_q(Y | X1, X2) = Σ q(x1, x2, y) log(q(x1, x2, y) / q(x1, x2))``, a sum of relative entropies of affine
functions of ``q``: a convex program solved exactly (to the solver's tolerance, about 1e-8) by cvxpy with
the exponential-cone interior-point solver Clarabel (any other installed exp-cone solver is used when
Clarabel is missing). ``q`` lives on the cells where ``p(x1, y) > 0`` and ``p(x2, y) > 0`` (every other
cell is zero on ``Δ_p``), so its support is not restricted to that of ``p``: for XOR the minimiser is the
product ``q(x1 | y) q(x2 | y)``, which puts mass on cells ``p`` never visits. The result's information terms
are recomputed from the clipped minimiser and clamped to the bounds that hold at the exact optimum
(``max(I(X1;Y), I(X2;Y)) ≤ I_q* ≤ min(I_p(X1,X2;Y), I(X1;Y) + I(X2;Y))``), so the four atoms are
non-negative and add up to ``total`` exactly. cvxpy is an optional dependency
(``pip install commlearn[interactions]``), imported only when a program has to be solved.

More than two modalities. The unique information of modality ``i`` is measured against the rest:
:func:`pid_one_vs_rest` takes modality ``i`` as ``X1`` and the joint of all the others as ``X2``.

Bias. On samples, ``p`` is the empirical distribution (plug-in estimate), and embeddings are first
discretised by k-means (:func:`discretise`). Both estimates depend on the number of clusters and samples:
mutual information is biased upwards by roughly ``cells / (2 N ln 2)`` bits for ``cells`` joint cells and
``N`` samples, and coarse clusters merge what the label needs. :class:`PIDResult` therefore carries the
numbers of values actually used and the sample count, so a report can state them next to the estimates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "PIDResult",
    "discretise",
    "joint_codes",
    "pid_from_distribution",
    "pid_from_embeddings",
    "pid_from_samples",
    "pid_one_vs_rest",
    "pid_one_vs_rest_from_embeddings",
]

_LN2 = math.log(2.0)
_SUM_TOL = 1e-6  # how far from 1 the mass of a given distribution may be
_INSTALL_HINT = "cvxpy is needed for the PID solver: pip install commlearn[interactions]"


@dataclass(frozen=True)
class PIDResult:
    """BROJA partial information decomposition of ``I(X1, X2; Y)``, all terms in bits.

    Attributes:
        redundancy: R, information about Y that both modalities carry.
        unique1: U1, information about Y only X1 carries.
        unique2: U2, information about Y only X2 carries.
        synergy: S, information about Y available only from X1 and X2 together.
        total: ``I_p(X1, X2; Y) = R + U1 + U2 + S``.
        n_samples: number of samples the distribution was estimated from (``None`` for a given distribution).
        n_clusters1: number of values of X1 used (clusters for embeddings, distinct codes for discrete data,
            non-empty rows for a given distribution).
        n_clusters2: same for X2 (for :func:`pid_one_vs_rest`, the number of joint values of the rest).
        n_classes: number of label values with non-zero probability.
    """

    redundancy: float
    unique1: float
    unique2: float
    synergy: float
    total: float
    n_samples: int | None
    n_clusters1: int
    n_clusters2: int
    n_classes: int

    def swapped(self) -> PIDResult:
        """The same decomposition with the roles of X1 and X2 exchanged."""
        return PIDResult(
            redundancy=self.redundancy,
            unique1=self.unique2,
            unique2=self.unique1,
            synergy=self.synergy,
            total=self.total,
            n_samples=self.n_samples,
            n_clusters1=self.n_clusters2,
            n_clusters2=self.n_clusters1,
            n_classes=self.n_classes,
        )

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready dict of all fields (information terms in bits)."""
        return asdict(self)


# ------------------------------------------------------------------------------------------ information


def _mi_nats(pxy: NDArray[np.float64]) -> float:
    """Mutual information (nats) of a 2-D joint distribution ``pxy`` of shape (nx, ny) summing to 1."""
    px = pxy.sum(axis=1, keepdims=True)
    py = pxy.sum(axis=0, keepdims=True)
    mask = pxy > 0
    ratio = pxy[mask] / (px @ py)[mask]
    return max(0.0, float(np.sum(pxy[mask] * np.log(ratio))))  # >= 0 up to rounding


def _minimise_synergy(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Minimiser ``q*`` of ``I_q(X1, X2; Y)`` over ``Δ_p`` for ``p`` of shape (n1, n2, ny), no empty slices.

    Returns:
        ``q*`` of shape (n1, n2, ny), non-negative, summing to 1 (marginals match ``p`` to ~1e-8).
    """
    try:
        import cvxpy as cp
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err

    n1, n2, ny = p.shape
    p1y = p.sum(axis=1)  # (n1, ny)
    p2y = p.sum(axis=0)  # (n2, ny)
    valid = (p1y[:, None, :] > 0) & (p2y[None, :, :] > 0)  # cells allowed to carry mass on Δ_p
    i_idx, j_idx, k_idx = np.nonzero(valid)
    m = i_idx.size
    cols = np.arange(m)

    # Marginal constraints. For each label value k the cells form the full product of its supported x1 and
    # x2 values (a transportation polytope); one (x2, k) row per k is implied by the others and is dropped so
    # the equality system has full row rank.
    row1 = np.ravel_multi_index((i_idx, k_idx), (n1, ny))
    row2 = np.ravel_multi_index((j_idx, k_idx), (n2, ny))
    used1 = np.unique(row1)
    used2 = np.unique(row2)
    last_per_k = {int(r % ny): int(r) for r in used2}  # largest x2 row of each label value (rows are sorted)
    keep2 = np.setdiff1d(used2, np.fromiter(last_per_k.values(), dtype=np.int64))
    a1 = sp.csr_matrix((np.ones(m), (np.searchsorted(used1, row1), cols)), shape=(used1.size, m))
    sel2 = np.isin(row2, keep2)
    a2 = sp.csr_matrix(
        (np.ones(int(sel2.sum())), (np.searchsorted(keep2, row2[sel2]), cols[sel2])), shape=(keep2.size, m)
    )
    b1 = p1y.reshape(-1)[used1]
    b2 = p2y.reshape(-1)[keep2]

    # q(x1, x2) broadcast back to each cell: group-sum matrix G (cells -> (x1, x2) groups), M = G Gᵀ.
    group = np.ravel_multi_index((i_idx, j_idx), (n1, n2))
    _, group_id = np.unique(group, return_inverse=True)
    g = sp.csr_matrix((np.ones(m), (cols, group_id)), shape=(m, int(group_id.max()) + 1))
    pairs = sp.csr_matrix(g @ g.T)

    q = cp.Variable(m, nonneg=True)
    constraints = [a1 @ q == b1]
    if keep2.size:
        constraints.append(a2 @ q == b2)
    problem = cp.Problem(cp.Minimize(cp.sum(cp.rel_entr(q, pairs @ q))), constraints)
    solver = cp.CLARABEL if cp.CLARABEL in cp.installed_solvers() else None
    problem.solve(solver=solver)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or q.value is None:
        raise RuntimeError(f"PID convex program not solved (cvxpy status {problem.status!r})")

    out = np.zeros((n1, n2, ny))
    out[i_idx, j_idx, k_idx] = np.clip(np.asarray(q.value, dtype=np.float64), 0.0, None)
    return out / out.sum()


def _decompose(p: NDArray[np.float64], n_samples: int | None) -> PIDResult:
    """PID of a valid distribution ``p`` of shape (n1, n2, ny) (non-negative, sums to 1)."""
    keep1, keep2, keepy = p.sum(axis=(1, 2)) > 0, p.sum(axis=(0, 2)) > 0, p.sum(axis=(0, 1)) > 0
    p = p[keep1][:, keep2][:, :, keepy]
    p = p / p.sum()
    n1, n2, ny = p.shape
    i1 = _mi_nats(p.sum(axis=1))
    i2 = _mi_nats(p.sum(axis=0))
    i12 = max(_mi_nats(p.reshape(n1 * n2, ny)), i1, i2)  # chain rule, exact up to rounding
    if min(n1, n2, ny) == 1:  # Δ_p is the single point p
        iq = i12
    else:
        q = _minimise_synergy(p)
        iq = _mi_nats(q.reshape(n1 * n2, ny))
    iq = min(max(iq, i1, i2), i12, i1 + i2)
    return PIDResult(
        redundancy=(i1 + i2 - iq) / _LN2,
        unique1=(iq - i2) / _LN2,
        unique2=(iq - i1) / _LN2,
        synergy=(i12 - iq) / _LN2,
        total=i12 / _LN2,
        n_samples=n_samples,
        n_clusters1=n1,
        n_clusters2=n2,
        n_classes=ny,
    )


# ------------------------------------------------------------------------------------------ public API


def pid_from_distribution(p: ArrayLike) -> PIDResult:
    """BROJA PID of a given joint distribution.

    Args:
        p: joint probabilities ``p[x1, x2, y]``, shape (n1, n2, ny), non-negative, summing to 1 (±1e-6).
            Values of zero probability are dropped (they do not count in the result's ``n_clusters*``).

    Returns:
        The decomposition in bits, with ``n_samples=None``.

    Raises:
        ValueError: if ``p`` is not a 3-D finite non-negative array summing to 1.
        ImportError: if cvxpy is missing and a program has to be solved.
    """
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"p must have shape (n1, n2, ny), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("p must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError("p must be finite")
    if np.any(arr < 0):
        raise ValueError("p must be non-negative")
    if abs(float(arr.sum()) - 1.0) > _SUM_TOL:
        raise ValueError(f"p must sum to 1, got {float(arr.sum()):.6g}")
    return _decompose(arr, n_samples=None)


def _codes(x: ArrayLike, name: str) -> NDArray[np.int64]:
    """Validate a 1-D integer-coded sample array and remap its values to 0..k-1."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (N,), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer codes, got dtype {arr.dtype}")
    return np.unique(arr, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _empirical(c1: NDArray[np.int64], c2: NDArray[np.int64], cy: NDArray[np.int64]) -> NDArray[np.float64]:
    """Empirical joint distribution of three code arrays (values 0..k-1), shape (k1, k2, ky)."""
    shape = (int(c1.max()) + 1, int(c2.max()) + 1, int(cy.max()) + 1)
    flat = np.ravel_multi_index((c1, c2, cy), shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64)
    return (counts / counts.sum()).reshape(shape)


def pid_from_samples(x1: ArrayLike, x2: ArrayLike, y: ArrayLike) -> PIDResult:
    """BROJA PID of the empirical (plug-in) distribution of discrete samples.

    Args:
        x1: integer codes of modality 1, shape (N,).
        x2: integer codes of modality 2, shape (N,).
        y: integer class labels, shape (N,).

    Returns:
        The decomposition in bits; ``n_samples = N`` and ``n_clusters*``/``n_classes`` are the numbers of
        distinct observed values (see the module docstring on the plug-in bias).

    Raises:
        ValueError: if an input is not a non-empty 1-D integer array or the lengths differ.
    """
    c1, c2, cy = _codes(x1, "x1"), _codes(x2, "x2"), _codes(y, "y")
    if not c1.size == c2.size == cy.size:
        raise ValueError(f"x1, x2 and y must have the same length, got {c1.size}, {c2.size}, {cy.size}")
    return _decompose(_empirical(c1, c2, cy), n_samples=int(cy.size))


def discretise(features: ArrayLike, n_clusters: int, seed: int = 0) -> NDArray[np.int64]:
    """Cluster features with k-means into integer codes.

    Args:
        features: shape (N, F) (a 1-D array is taken as (N, 1)), finite.
        n_clusters: number of clusters k ≥ 1; fewer are used when the features have fewer distinct rows.
        seed: k-means seed (the result is deterministic given it).

    Returns:
        Cluster codes in ``0..k'-1``, shape (N,), ``k' = min(n_clusters, distinct rows)``.

    Raises:
        ValueError: on a bad shape, non-finite values or ``n_clusters < 1``.
    """
    from sklearn.cluster import KMeans

    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"features must have shape (N, F), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"features must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("features must be finite")
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer) or n_clusters < 1:
        raise ValueError(f"n_clusters must be an integer >= 1, got {n_clusters!r}")
    k = min(int(n_clusters), int(np.unique(arr, axis=0).shape[0]))
    if k == 1:
        return np.zeros(arr.shape[0], dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(arr)
    labels = np.asarray(km.labels_)
    return np.unique(labels, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _labels(y: ArrayLike, n: int) -> NDArray[Any]:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"y must have shape ({n},), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"y must hold integer classes, got dtype {arr.dtype}")
    return arr


def pid_from_embeddings(
    z1: ArrayLike, z2: ArrayLike, y: ArrayLike, n_clusters: int = 20, seed: int = 0
) -> PIDResult:
    """BROJA PID of two embeddings and a class label, after k-means discretisation of each embedding.

    Args:
        z1: embeddings of modality 1, shape (N, F1).
        z2: embeddings of modality 2, shape (N, F2).
        y: integer class labels, shape (N,).
        n_clusters: clusters per embedding (fewer if an embedding has fewer distinct rows).
        seed: k-means seed.

    Returns:
        The decomposition in bits, with ``n_samples = N`` and the cluster counts used (the estimate is
        biased by both, see the module docstring).

    Raises:
        ValueError: on bad shapes, mismatched lengths or non-integer labels.
    """
    a1, a2 = np.asarray(z1), np.asarray(z2)
    if a1.ndim != 2 or a2.ndim != 2:
        raise ValueError(f"z1 and z2 must have shape (N, F), got shapes {a1.shape} and {a2.shape}")
    if a1.shape[0] != a2.shape[0]:
        raise ValueError(f"z1 and z2 must have the same number of rows, got {a1.shape[0]} and {a2.shape[0]}")
    labels = _labels(y, a1.shape[0])
    return pid_from_samples(discretise(a1, n_clusters, seed), discretise(a2, n_clusters, seed), labels)


def joint_codes(codes: Sequence[ArrayLike]) -> NDArray[np.int64]:
    """Integer code of the joint value of several discrete variables.

    Args:
        codes: one or more integer code arrays, each of shape (N,).

    Returns:
        Codes in ``0..k-1`` of the observed tuples, shape (N,), ``k`` the number of distinct tuples.

    Raises:
        ValueError: if ``codes`` is empty or an array is not 1-D integer of the common length.
    """
    if len(codes) == 0:
        raise ValueError("codes must hold at least one array")
    cols = [_codes(c, f"codes[{i}]") for i, c in enumerate(codes)]
    if len({c.size for c in cols}) != 1:
        raise ValueError(f"codes must have the same length, got {[c.size for c in cols]}")
    stacked = np.stack(cols, axis=1)
    return np.unique(stacked, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def pid_one_vs_rest(xs: Sequence[ArrayLike], y: ArrayLike) -> list[PIDResult]:
    """PID of each of n ≥ 2 discrete modalities against the joint of the others.

    Args:
        xs: n integer code arrays, each of shape (N,).
        y: integer class labels, shape (N,).

    Returns:
        n results; result ``i`` has modality ``i`` as X1 (``unique1`` is its unique information) and the joint
        of all the other modalities as X2 (``n_clusters2`` is the number of observed joint values, which
        grows quickly with n and increases the plug-in bias).

    Raises:
        ValueError: if fewer than two modalities are given or an array is invalid.
    """
    if len(xs) < 2:
        raise ValueError(f"xs must hold at least 2 modalities, got {len(xs)}")
    return [
        pid_from_samples(xs[i], joint_codes([x for j, x in enumerate(xs) if j != i]), y)
        for i in range(len(xs))
    ]


def pid_one_vs_rest_from_embeddings(
    zs: Sequence[ArrayLike], y: ArrayLike, n_clusters: int = 20, seed: int = 0
) -> list[PIDResult]:
    """:func:`pid_one_vs_rest` on n ≥ 2 embeddings, each discretised by :func:`discretise` first.

    Args:
        zs: n embeddings, each of shape (N, F_i).
        y: integer class labels, shape (N,).
        n_clusters: clusters per embedding.
        seed: k-means seed.

    Returns:
        n results, as :func:`pid_one_vs_rest`.

    Raises:
        ValueError: on fewer than two embeddings, bad shapes, mismatched lengths or non-integer labels.
    """
    if len(zs) < 2:
        raise ValueError(f"zs must hold at least 2 embeddings, got {len(zs)}")
    arrs = [np.asarray(z) for z in zs]
    if any(a.ndim != 2 for a in arrs):
        raise ValueError(f"embeddings must have shape (N, F), got shapes {[a.shape for a in arrs]}")
    if len({a.shape[0] for a in arrs}) != 1:
        raise ValueError(f"embeddings must have the same number of rows, got {[a.shape[0] for a in arrs]}")
    labels = _labels(y, arrs[0].shape[0])
    return pid_one_vs_rest([discretise(a, n_clusters, seed) for a in arrs], labels)
