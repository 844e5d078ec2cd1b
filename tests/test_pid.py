"""Tests of the BROJA partial information decomposition (commlearn.eval.pid).

Tolerances: 1e-6 bits on exact distributions (the convex solver is accurate to ~1e-8), 1e-4 bits against
the brute-force reference, 0.05 bits on a few thousand samples (plug-in and k-means estimates).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import xlogy

from commlearn.eval.pid import (
    PIDResult,
    discretise,
    joint_codes,
    pid_from_distribution,
    pid_from_embeddings,
    pid_from_samples,
    pid_one_vs_rest,
    pid_one_vs_rest_from_embeddings,
)

EXACT_TOL = 1e-6  # bits, exact distributions
REF_TOL = 1e-4  # bits, against the brute-force reference
SAMPLE_TOL = 0.05  # bits, a few thousand samples

requires_cvxpy = pytest.mark.skipif(importlib.util.find_spec("cvxpy") is None, reason="cvxpy not installed")


def _gate(fn: Callable[[int, int], int], ny: int) -> NDArray[np.float64]:
    """p(x1, x2, y) for uniform independent bits x1, x2 and y = fn(x1, x2)."""
    p = np.zeros((2, 2, ny))
    for a in range(2):
        for b in range(2):
            p[a, b, fn(a, b)] += 0.25
    return p


def _atoms(r: PIDResult) -> NDArray[np.float64]:
    return np.array([r.redundancy, r.unique1, r.unique2, r.synergy])


def _h(x: float) -> float:
    """Binary entropy in bits."""
    return -x * math.log2(x) - (1 - x) * math.log2(1 - x)


# (R, U1, U2, S) in bits
KNOWN = {
    "xor": (_gate(lambda a, b: a ^ b, 2), (0.0, 0.0, 0.0, 1.0)),
    "rdn": (np.array([[[0.5, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.5]]]), (1.0, 0.0, 0.0, 0.0)),
    "unq1": (_gate(lambda a, b: a, 2), (0.0, 1.0, 0.0, 0.0)),
    "unq2": (_gate(lambda a, b: b, 2), (0.0, 0.0, 1.0, 0.0)),
    # y = (x1, x2): on Δ_p y determines both inputs, so q* = p, S = 0, U_i = H(X_i | X_j) = 1, R = I(X1;X2) = 0.
    "copy": (_gate(lambda a, b: 2 * a + b, 4), (0.0, 1.0, 1.0, 0.0)),
    # y = x1 AND x2 (Bertschinger et al. 2014): R = I(X1; Y) = h(1/4) - 1/2, U = 0, S = 1/2.
    "and": (_gate(lambda a, b: a & b, 2), (_h(0.25) - 0.5, 0.0, 0.0, 0.5)),
}


# ------------------------------------------------------------------------------------ exact distributions


@requires_cvxpy
@pytest.mark.parametrize("name", list(KNOWN))
def test_known_answers(name: str) -> None:
    p, expected = KNOWN[name]
    r = pid_from_distribution(p)
    np.testing.assert_allclose(_atoms(r), expected, atol=EXACT_TOL)
    assert r.total == pytest.approx(sum(expected), abs=EXACT_TOL)
    assert r.n_samples is None


@requires_cvxpy
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_atoms_sum_to_total_and_swap_symmetry(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random((4, 5, 3)) ** 3
    p[rng.random(p.shape) < 0.3] = 0.0  # sparse support
    p /= p.sum()
    r = pid_from_distribution(p)
    assert np.all(_atoms(r) >= 0.0)
    assert _atoms(r).sum() == pytest.approx(r.total, abs=1e-12)
    pxy = p.reshape(-1, 3)
    outer = pxy.sum(1, keepdims=True) * pxy.sum(0, keepdims=True)
    direct = float(np.sum(xlogy(pxy, np.divide(pxy, outer, out=np.ones_like(pxy), where=pxy > 0))))
    assert r.total == pytest.approx(direct / math.log(2), abs=1e-12)
    s = pid_from_distribution(p.transpose(1, 0, 2))
    np.testing.assert_allclose(_atoms(s), _atoms(r.swapped()), atol=1e-5)
    assert (s.n_clusters1, s.n_clusters2) == (5, 4)


def _reference_binary(p: NDArray[np.float64]) -> tuple[float, float, float, float]:
    """Brute-force BROJA for p of shape (2, 2, 2), independent of the convex solver.

    For each y the table q(., . , y) with fixed row and column sums has one free entry t_y = q(0, 0, y) in an
    interval, so Δ_p is a rectangle in (t_0, t_1); I_q(X1, X2; Y) is convex on it and is minimised by a grid
    search zoomed in four times.
    """
    r0, r1 = p[0].sum(0), p[1].sum(0)  # q(x1 = 0, y), q(x1 = 1, y), shape (2,)
    s0 = p[:, 0].sum(0)  # q(x2 = 0, y)
    lo, hi = np.maximum(0.0, s0 - r1), np.minimum(r0, s0)
    py = p.sum((0, 1))

    def mi(t0: NDArray[np.float64], t1: NDArray[np.float64]) -> NDArray[np.float64]:
        total = np.zeros_like(t0)
        cells = []
        for k, t in enumerate((t0, t1)):
            cells.append([t, r0[k] - t, s0[k] - t, r1[k] - s0[k] + t])  # (0,0), (0,1), (1,0), (1,1)
        for c in range(4):
            q12 = cells[0][c] + cells[1][c]
            for k in range(2):
                q = np.clip(cells[k][c], 0.0, None)
                total += xlogy(q, q) - xlogy(q, np.clip(q12, 1e-300, None) * py[k])
        return total

    a, b = lo.copy(), hi.copy()
    for _ in range(4):
        g0, g1 = np.meshgrid(np.linspace(a[0], b[0], 201), np.linspace(a[1], b[1], 201), indexing="ij")
        vals = mi(g0, g1)
        i, j = np.unravel_index(int(np.argmin(vals)), vals.shape)
        best = np.array([g0[i, j], g1[i, j]])
        step = (b - a) / 200
        a, b = np.maximum(lo, best - 2 * step), np.minimum(hi, best + 2 * step)
    iq = float(vals.min()) / math.log(2)
    p1, p2, p12 = p.sum(1), p.sum(0), p.reshape(4, 2)

    def mi2(t: NDArray[np.float64]) -> float:
        return float(np.sum(xlogy(t, t / (t.sum(1, keepdims=True) * t.sum(0, keepdims=True))))) / math.log(2)

    i1, i2, itot = mi2(p1), mi2(p2), mi2(p12)
    return i1 + i2 - iq, iq - i2, iq - i1, itot - iq


@requires_cvxpy
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_matches_brute_force_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    p = rng.dirichlet(np.full(8, 0.7))
    if seed >= 3:  # two empty cells: Δ_p reaches beyond the support of p
        p[rng.choice(8, 2, replace=False)] = 0.0
        p /= p.sum()
    p = p.reshape(2, 2, 2)
    np.testing.assert_allclose(_atoms(pid_from_distribution(p)), _reference_binary(p), atol=REF_TOL)


def test_constant_label_has_no_information() -> None:
    p = np.full((3, 2, 1), 1 / 6)  # solved without the convex program
    r = pid_from_distribution(p)
    np.testing.assert_allclose(_atoms(r), 0.0, atol=1e-12)
    assert r.total == 0.0 and r.n_classes == 1


# ---------------------------------------------------------------------------------------------- samples


@requires_cvxpy
def test_samples_known_answers() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 4000), rng.integers(0, 2, 4000)
    xor = pid_from_samples(a, b, a ^ b)
    np.testing.assert_allclose(_atoms(xor), (0, 0, 0, 1), atol=SAMPLE_TOL)
    assert (xor.n_samples, xor.n_clusters1, xor.n_clusters2, xor.n_classes) == (4000, 2, 2, 2)
    np.testing.assert_allclose(_atoms(pid_from_samples(a, a, a)), (1, 0, 0, 0), atol=SAMPLE_TOL)
    unq = pid_from_samples(a + 7, b - 3, a)  # codes need not start at 0
    np.testing.assert_allclose(_atoms(unq), (0, 1, 0, 0), atol=SAMPLE_TOL)
    np.testing.assert_allclose(_atoms(pid_from_samples(b, a, a)), (0, 0, 1, 0), atol=SAMPLE_TOL)


@requires_cvxpy
def test_one_vs_rest() -> None:
    grid = np.array([(a, b, c) for a in range(2) for b in range(2) for c in range(2)] * 5)
    x1, x2, x3 = grid.T
    y = x1 ^ x2  # x3 is independent noise
    r1, r2, r3 = pid_one_vs_rest([x1, x2, x3], y)
    np.testing.assert_allclose(_atoms(r1), (0, 0, 0, 1), atol=EXACT_TOL)
    np.testing.assert_allclose(_atoms(r2), (0, 0, 0, 1), atol=EXACT_TOL)
    np.testing.assert_allclose(_atoms(r3), (0, 0, 1, 0), atol=EXACT_TOL)
    assert (r1.n_clusters1, r1.n_clusters2, r1.n_samples) == (2, 4, 40)
    np.testing.assert_array_equal(joint_codes([x1, x2]), 2 * x1 + x2)


# ------------------------------------------------------------------------------------------- embeddings


def _xor_blobs(n: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Two 3-D embeddings of 4 well separated Gaussian blobs each; y = XOR of the blob ids' parities."""
    rng = np.random.default_rng(seed)
    b1, b2 = rng.integers(0, 4, n), rng.integers(0, 4, n)
    centres1, centres2 = 10.0 * rng.standard_normal((4, 3)), 10.0 * rng.standard_normal((4, 3))
    z1 = centres1[b1] + 0.3 * rng.standard_normal((n, 3))
    z2 = centres2[b2] + 0.3 * rng.standard_normal((n, 3))
    return z1, z2, (b1 % 2) ^ (b2 % 2)


@requires_cvxpy
def test_embeddings_xor_is_synergy() -> None:
    z1, z2, y = _xor_blobs(2000, seed=0)
    r = pid_from_embeddings(z1, z2, y, n_clusters=4, seed=0)
    np.testing.assert_allclose(_atoms(r), (0, 0, 0, 1), atol=SAMPLE_TOL)
    assert (r.n_samples, r.n_clusters1, r.n_clusters2, r.n_classes) == (2000, 4, 4, 2)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["n_clusters1"] == 4 and d["synergy"] == pytest.approx(r.synergy)
    assert set(d) == {
        "redundancy", "unique1", "unique2", "synergy", "total", "n_samples", "n_clusters1", "n_clusters2",
        "n_classes",
    }  # fmt: skip
    rest = pid_one_vs_rest_from_embeddings([z1, z2], y, n_clusters=4)
    np.testing.assert_allclose(_atoms(rest[1]), _atoms(rest[0].swapped()), atol=1e-5)


def test_discretise() -> None:
    z1, _, _ = _xor_blobs(300, seed=1)
    codes = discretise(z1, 4, seed=0)
    assert codes.shape == (300,) and codes.dtype == np.int64 and set(codes.tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(codes, discretise(z1, 4, seed=0))
    few = np.repeat(np.eye(3), 10, axis=0)  # 3 distinct rows
    assert len(np.unique(discretise(few, 20))) == 3
    assert np.all(discretise(np.ones((5, 2)), 20) == 0)
    assert discretise(np.arange(6.0), 2).shape == (6,)  # 1-D features are one column


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("p", "match"),
    [
        (np.full((2, 2), 0.25), r"shape \(n1, n2, ny\)"),
        (np.zeros((0, 2, 2)), "must not be empty"),
        (np.full((2, 2, 2), np.nan), "finite"),
        (np.array([[[0.75, -0.25]], [[0.25, 0.25]]]), "non-negative"),
        (np.full((2, 2, 2), 0.2), "sum to 1"),
    ],
)
def test_distribution_errors(p: NDArray[np.float64], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pid_from_distribution(p)


def test_sample_and_embedding_errors() -> None:
    a = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="x1 must hold integer codes"):
        pid_from_samples(a.astype(float), a, a)
    with pytest.raises(ValueError, match="x2 must be 1-D"):
        pid_from_samples(a, a[:, None], a)
    with pytest.raises(ValueError, match="same length"):
        pid_from_samples(a, a, a[:3])
    with pytest.raises(ValueError, match="y must not be empty"):
        pid_from_samples(a, a, a[:0])
    z = np.zeros((4, 2))
    with pytest.raises(ValueError, match="y must hold integer classes"):
        pid_from_embeddings(z, z, a.astype(float))
    with pytest.raises(ValueError, match="same number of rows"):
        pid_from_embeddings(z, z[:3], a)
    with pytest.raises(ValueError, match=r"shape \(N, F\)"):
        pid_from_embeddings(z[:, 0], z, a)
    with pytest.raises(ValueError, match="n_clusters must be an integer >= 1"):
        discretise(z, 0)
    with pytest.raises(ValueError, match="finite"):
        discretise(np.full((3, 2), np.inf), 2)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        pid_one_vs_rest([a], a)
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        pid_one_vs_rest_from_embeddings([z], a)


def test_missing_cvxpy_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # makes `import cvxpy` raise ImportError
    with pytest.raises(ImportError, match=r"pip install commlearn\[interactions\]"):
        pid_from_distribution(KNOWN["xor"][0])
