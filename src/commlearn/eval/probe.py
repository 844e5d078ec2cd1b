"""Linear probes on frozen features: the CLIP protocol (logistic regression with a held-out sweep of C).

Protocol (Radford et al. 2021, used by the CoMM paper): features are extracted once by the caller and
standardised with the probe-train statistics. 40 % of the probe-train rows are held out (stratified by class
for classification, a seeded random split otherwise) to choose the L2 strength: a coarse sweep
``C ∈ {1e-6, 1e-4, …, 1e6}``, then a bisection in log10-space around the best value so far (steps of ±1,
±0.5, ±0.25 decades). The model is refitted on train+val with the chosen strength and scored once on the
test rows. Everything is deterministic given ``seed`` (and the torch thread count, which changes float
summation order).

Choosing C. Among all C evaluated, the candidates are those whose validation metric is within one standard
error of the best one (Breiman's one-standard-error rule; the SE of balanced accuracy is exact for
independent per-class recalls, that of F1 a binomial approximation); among them the lowest validation
log-loss wins. Plain ``argmax`` of a noisy validation accuracy picks a random C when the features carry no
signal (C up to 1 in our noise runs); this rule picks a heavily regularised C there (≤ 1e-2) and stays on
the accuracy plateau otherwise (mean test score within 0.2 % of ``argmax`` over six synthetic problems).

Solver. Multinomial (K ≥ 3) or binary (K = 2, one logit, as scikit-learn does) logistic regression by
full-batch L-BFGS written here in torch, on the features' device: analytic loss and gradient (two matmuls
per evaluation in the fast BLAS layouts), a diagonal preconditioner (``1 / (p(1-p) + λ)`` per weight, exact
up to the feature covariance because the features are standardised), intercepts started at the log priors,
and each fit warm-started from the closest C already fitted. The objective is scikit-learn's:
``mean_i CE_i + ½ λ ‖W‖²`` with ``λ = 1 / (C · N)``, intercept unpenalised, stopping when
``max |∇| ≤ 1e-4`` (scikit-learn's ``tol``); tests check the optimum against scikit-learn to 1e-6.
float32 features are solved in float32, float64 stay float64: on 10 000 × 512 features, 10 classes, both
give the same chosen C and test score, and scikit-learn (float64) agrees within one test sample.

Why torch rather than ``sklearn.linear_model.LogisticRegression(solver="lbfgs")``: the same scores, faster.
Measured on trained features (the cpu-preset demo's Cross and Cross+Self checkpoints, 6 000 × 4 096 probe-train
and 3 976 test rows, task U1, the whole protocol, 2 threads): torch 23.7 s and 29.7 s, scikit-learn in the same
protocol 91.3 s and 60.2 s; test scores 19.18 vs 18.97 and 45.25 vs 44.63.

The stopping rule is part of the protocol. At weak regularisation on network features (D close to or above
the fit split's N, covariance eigenvalues spanning decades) the gradient falls below ``tol`` long before the
weights have moved far along the covariance's weak directions, here and in scikit-learn alike: an implicit
regularisation the published numbers include. A solver that goes further along them (L-BFGS preconditioned by
the features' covariance, tried and dropped) chose C = 100 instead of 0.1–1 on the validation rows and scored
the unseen-combination test rows lower: U1 37.07 (Cross+Self) and 17.40 (Cross). It was also 14× faster on
random-init paper-preset CoMM features (10 000 × 512: 7.4 s against 106 s for the four tasks). The
preconditioner stays diagonal, as close to scikit-learn's unpreconditioned iterates as standardised features
allow.

Multi-label probes (one binary probe per label, each with its own C) are solved jointly as one decoupled
problem with a per-label λ. On an oversubscribed CPU (other busy processes on every core) torch's intra-op
thread pool can make small problems 50× slower (2 000 × 128: 9 s with 2 threads, 0.16 s with 1); the probe
leaves the thread count to the caller, so call ``torch.set_num_threads(1)`` there.

Ridge regression uses the closed form through one eigendecomposition per split (the Gram matrix ``XᵀX``
when D ≤ N, the kernel ``XXᵀ`` otherwise) in float64, so the whole α path costs one decomposition.
Its objective is scikit-learn's ``Ridge``: ``‖y − Xw − b‖² + α‖w‖²``; α is chosen by validation MSE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from commlearn.config import TASK_TYPES, TaskType

__all__ = [
    "ProbeResult",
    "probe_classification",
    "probe_multilabel",
    "probe_regression",
    "probe_tasks",
]

_COARSE_LOG10 = (-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0)
_FINE_STEPS = (1.0, 0.5, 0.25)
_TOL = 1e-4
_MAX_ITER = 1000


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one linear probe.

    Attributes:
        metric: name of the headline metric: ``"balanced_accuracy"`` (%), ``"weighted_f1"`` (%) or ``"mse"``.
        score: value of the headline metric on the test rows.
        extra: other test metrics (``"accuracy"``, ``"macro_f1"``, ``"r2"``, per-label F1...).
        reg_name: ``"C"`` (logistic regression, inverse L2 strength) or ``"alpha"`` (ridge L2 strength).
        reg: the chosen strength, one value per probe (one per label for multi-label probes).
    """

    metric: str
    score: float
    extra: dict[str, float] = field(default_factory=dict)
    reg_name: str = "C"
    reg: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready plain dict of the result."""
        return {
            "metric": self.metric,
            "score": self.score,
            "extra": dict(self.extra),
            "reg_name": self.reg_name,
            "reg": list(self.reg),
        }


# --------------------------------------------------------------------------------------------- validation


def _check_features(train_x: Tensor, test_x: Tensor) -> None:
    for name, x in (("train_x", train_x), ("test_x", test_x)):
        if not isinstance(x, Tensor) or x.ndim != 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a 2-d tensor (N, D), got {got}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
        if x.shape[0] < 1:
            raise ValueError(f"{name} must have at least one row, got shape {tuple(x.shape)}")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}")
    for name, x in (("train_x", train_x), ("test_x", test_x)):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or Inf values; clean or impute the features first")


def _check_rows(name: str, x: Tensor, y: Tensor) -> None:
    if not isinstance(y, Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(y).__name__}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{name} has {y.shape[0]} rows but the features have {x.shape[0]}")


def _check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")


# ------------------------------------------------------------------------------------------ preprocessing


def _standardise(train_x: Tensor, test_x: Tensor) -> tuple[Tensor, Tensor]:
    """Z-score both (N, D), (M, D) with the train mean and std; constant train columns become 0.

    Computed in float64 for float64 features, float32 otherwise (half-precision features included).
    """
    dtype = torch.float64 if train_x.dtype == torch.float64 else torch.float32
    mean = train_x.mean(0, dtype=torch.float64).to(dtype)
    xtr = train_x.to(dtype) - mean
    std = torch.linalg.vector_norm(xtr, dim=0, dtype=torch.float64) / math.sqrt(xtr.shape[0])
    constant = (train_x.amax(0) == train_x.amin(0)) | (std == 0)
    scale = torch.where(constant, torch.ones_like(std), 1.0 / std).to(dtype)
    return xtr.mul_(scale), (test_x.to(dtype) - mean).mul_(scale)


def _split(
    n: int, y: Tensor | None, val_fraction: float, seed: int, val_rows: int | None = None
) -> tuple[Tensor, Tensor]:
    """Seeded hold-out split of ``n`` rows; stratified when class ids ``y`` (n,) in [0, K) are given.

    Every class keeps at least one row in the fit part. With ``val_rows`` the last ``val_rows`` rows are the
    validation part (a given split). Returns sorted (fit_idx, val_idx) on the CPU.
    """
    if val_rows is not None:
        if not 0 < val_rows < n:
            raise ValueError(f"val_rows must be in 1..{n - 1} (rows of the probe-train set), got {val_rows}")
        return torch.arange(n - val_rows), torch.arange(n - val_rows, n)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    if y is None:
        n_val = min(max(int(round(val_fraction * n)), 0), n - 1)
        is_val = torch.zeros(n, dtype=torch.bool)
        is_val[:n_val] = True
        idx = perm
    else:
        y_perm = y.cpu()[perm]
        sorted_y, order = torch.sort(y_perm, stable=True)  # grouped by class, random order within a class
        counts = torch.bincount(sorted_y)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(n) - starts[sorted_y]
        n_val_class = torch.floor(val_fraction * counts.double() + 0.5).long()
        n_val_class = torch.minimum(n_val_class, counts - 1).clamp(min=0)
        is_val = rank < n_val_class[sorted_y]
        idx = perm[order]
    return torch.sort(idx[~is_val]).values, torch.sort(idx[is_val]).values


# --------------------------------------------------------------------------------------------- the solver


def _lbfgs(
    fg: Callable[[Tensor], tuple[Tensor, Tensor]],
    theta: Tensor,
    max_iter: int = _MAX_ITER,
    tol: float = _TOL,
    history: int = 10,
    precond: Tensor | None = None,
) -> Tensor:
    """Minimise a smooth convex function by L-BFGS with a backtracking (Armijo) line search.

    Args:
        fg: ``fg(theta) -> (value (), gradient like theta)``.
        theta: starting point (P,), copied.
        max_iter: iteration budget.
        tol: stop when ``max |gradient| <= tol`` (scikit-learn's ``gtol``).
        history: number of curvature pairs kept.
        precond: positive diagonal (P,) approximating the inverse Hessian, the initial L-BFGS matrix (scaled
            by ``sᵀy / yᵀ diag(precond) y`` once curvature pairs exist); identity when None.

    Returns:
        The minimiser (P,).
    """
    eps = 8 * torch.finfo(theta.dtype).eps
    f, g = fg(theta)
    f_val, g_max = torch.stack([f, g.abs().max()]).tolist()
    s_hist: list[Tensor] = []
    y_hist: list[Tensor] = []
    rho_hist: list[Tensor] = []
    for _ in range(max_iter):
        if g_max <= tol:
            break
        # two-loop recursion: d = -H g
        q = g.clone()
        alphas = []
        for s_i, y_i, rho_i in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist), strict=True):
            a_i = rho_i * torch.dot(s_i, q)
            q.sub_(a_i * y_i)
            alphas.append(a_i)
        if precond is not None:
            q.mul_(precond)
            if s_hist:
                q.mul_(torch.dot(s_hist[-1], y_hist[-1]) / torch.dot(y_hist[-1], precond * y_hist[-1]))
        elif s_hist:
            q.mul_(torch.dot(s_hist[-1], y_hist[-1]) / torch.dot(y_hist[-1], y_hist[-1]))
        else:
            q.mul_(min(1.0, 1.0 / max(float(g.abs().sum()), 1e-30)))
        for s_i, y_i, rho_i, a_i in zip(s_hist, y_hist, rho_hist, reversed(alphas), strict=True):
            q.add_((a_i - rho_i * torch.dot(y_i, q)) * s_i)
        d = q.neg_()
        gtd = float(torch.dot(g, d))
        if gtd >= 0:  # not a descent direction: forget the curvature pairs, take a gradient step
            s_hist.clear()
            y_hist.clear()
            rho_hist.clear()
            d = -g * min(1.0, 1.0 / max(float(g.abs().sum()), 1e-30))
            gtd = float(torch.dot(g, d))
        t = 1.0
        slack = eps * abs(f_val)  # float32 losses stop decreasing visibly near the optimum
        for _ls in range(30):
            theta_new = theta + t * d
            f_new, g_new = fg(theta_new)
            f_new_val, g_new_max = torch.stack([f_new, g_new.abs().max()]).tolist()
            if f_new_val <= f_val + 1e-4 * t * gtd + slack:
                break
            # quadratic interpolation of the step, kept within [0.1 t, 0.5 t]
            denom = 2.0 * (f_new_val - f_val - t * gtd)
            t_q = -gtd * t * t / denom if denom > 0 else 0.5 * t
            t = min(max(t_q, 0.1 * t), 0.5 * t)
        else:
            break  # no acceptable step at the working precision: converged as far as it goes
        s_new, y_new = theta_new - theta, g_new - g
        sy = torch.dot(s_new, y_new)
        if float(sy) > eps * float(torch.dot(y_new, y_new)):
            s_hist.append(s_new)
            y_hist.append(y_new)
            rho_hist.append(1.0 / sy)
            if len(s_hist) > history:
                del s_hist[0], y_hist[0], rho_hist[0]
        theta, f, g, f_val, g_max = theta_new, f_new, g_new, f_new_val, g_new_max
    return theta


def _weighted_rates(target: Tensor, weight: Tensor | None) -> Tensor:
    """(Weighted) mean of the targets (N, M) over rows, clamped away from 0 and 1."""
    n = target.shape[0]
    p = target.mean(0) if weight is None else (weight[:, None] * target).sum(0) / weight.sum()
    return p.clamp(0.5 / n, 1.0 - 0.5 / n)


def _prior_logits(target: Tensor, softmax: bool, weight: Tensor | None = None) -> Tensor:
    """Intercepts (M,) that are optimal for W = 0 given targets (N, M): log priors or logits of the rates.

    Starting there spares L-BFGS the badly conditioned walk of rare classes' intercepts at small C.
    """
    p = _weighted_rates(target, weight)
    return p.log() if softmax else torch.logit(p)


def _fit_logistic(
    x: Tensor,
    target: Tensor,
    softmax: bool,
    lam: Tensor,
    w0: Tensor,
    b0: Tensor,
    max_iter: int = _MAX_ITER,
    tol: float = _TOL,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Minimise ``mean_i weight_i · loss_i + ½ Σ_k lam_k ‖W[k]‖²`` by full-batch L-BFGS.

    Args:
        x: features (N, D).
        target: one-hot (N, M) for the softmax loss, {0, 1} (N, M) for per-column sigmoid losses.
        softmax: multinomial cross-entropy over the M columns, else M independent binary losses.
        lam: L2 strength per column (M,).
        w0: initial weights (M, D) (``nn.Linear`` layout); b0: initial intercepts (M,).
        max_iter: L-BFGS iteration budget.
        tol: stop when the largest absolute gradient entry is at most ``tol``.
        weight: optional per-row loss weights (N,) (class balancing); None = all ones.

    Returns:
        The weights (M, D) and intercepts (M,).
    """
    n, d = x.shape
    m = w0.shape[0]
    lam = lam[:, None]
    weight = None if weight is None else weight.to(dtype=x.dtype, device=x.device)
    row_weight = None if weight is None else weight[:, None]

    def fg(theta: Tensor) -> tuple[Tensor, Tensor]:
        w, b = theta[: m * d].view(m, d), theta[m * d :]
        z = F.linear(x, w, b)  # (N, M); x @ Wᵀ and residᵀ @ x are the fast BLAS layouts for (N, D) x
        if softmax:
            lse = torch.logsumexp(z, 1)
            per_row = lse - (z * target).sum(1)
            loss = (per_row.sum() if weight is None else (weight * per_row).sum()) / n
            resid = torch.exp(z - lse[:, None]) - target
        else:
            loss = F.binary_cross_entropy_with_logits(z, target, weight=row_weight, reduction="sum") / n
            resid = torch.sigmoid(z) - target
        if row_weight is not None:
            resid *= row_weight
        resid /= n
        loss = loss + 0.5 * (lam * w.square()).sum()
        grad = torch.empty_like(theta)
        torch.addmm(w * lam, resid.T, x, out=grad[: m * d].view(m, d))
        torch.sum(resid, 0, out=grad[m * d :])
        return loss, grad

    with torch.no_grad():
        # diagonal Hessian estimate: standardised features make diag(XᵀVX)/N ≈ v = p(1 - p) per output
        p = _weighted_rates(target, weight)
        v = p * (1.0 - p)
        precond = 1.0 / torch.cat([(v[:, None] + lam).expand(m, d).reshape(-1), v])
        theta = _lbfgs(fg, torch.cat([w0.reshape(-1), b0]).to(x.dtype), max_iter, tol, precond=precond)
    return theta[: m * d].view(m, d), theta[m * d :]


# ----------------------------------------------------------------------------------------------- scoring


@dataclass
class _Scores:
    """Validation scores of one fit, one entry per group (a probe): metric in [0, 1], its SE, log-loss."""

    metric: Tensor
    se: Tensor
    loss: Tensor


def _balanced_weights(y: Tensor, n_classes: int) -> Tensor:
    """Row weights (N,) ``N / (K_present · count[y_i])`` (scikit-learn's ``class_weight="balanced"``)."""
    counts = torch.bincount(y, minlength=n_classes).double()
    present = int((counts > 0).sum())
    return (y.shape[0] / (present * counts.clamp(min=1)))[y]


def _class_recalls(pred: Tensor, y: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class recall (K,) and support (K,) for predictions and labels (N,) in [0, K)."""
    support = torch.bincount(y, minlength=n_classes).double()
    hits = torch.bincount(y[pred == y], minlength=n_classes).double()
    return hits / support.clamp(min=1), support


def _balanced_accuracy(pred: Tensor, y: Tensor, n_classes: int) -> tuple[float, float]:
    """Balanced accuracy (mean recall over the classes present in ``y``) and its standard error."""
    recall, support = _class_recalls(pred, y, n_classes)
    present = support > 0
    k = int(present.sum())
    r, s = recall[present], support[present]
    value = float(r.mean())
    se = float(torch.sqrt((r * (1 - r) / s).sum()) / k)
    return value, se


def _f1_per_label(pred: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-label F1 (L,) of {0,1} predictions and labels (N, L) (0 where undefined) and support (L,)."""
    pred, y = pred.double(), y.double()
    tp = (pred * y).sum(0)
    denom = pred.sum(0) + y.sum(0)
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp)), y.sum(0)


def _auroc(score: Tensor, y: Tensor) -> float | None:
    """Area under the ROC curve (%) of scores (N,) for labels (N,) in {0, 1}, tied scores counting one half
    (the Mann-Whitney U statistic); None unless both classes are present."""
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return None
    values, inverse = torch.unique(score.double(), return_inverse=True)
    first = torch.zeros(values.numel() + 1, dtype=torch.float64, device=score.device)
    counts = torch.bincount(inverse, minlength=values.numel()).double()
    first[1:] = counts.cumsum(0)  # rank of each distinct score: the mean of its 1-based positions
    ranks = ((first[:-1] + 1 + first[1:]) / 2)[inverse]
    u = float(ranks[y == 1].sum()) - pos * (pos + 1) / 2
    return 100.0 * u / (pos * neg)


def _score_multiclass(z: Tensor, y: Tensor, binary: bool, n_classes: int, balanced: bool = False) -> _Scores:
    """Validation balanced accuracy, its SE and the (class-balanced if ``balanced``) log-loss of logits (N, M)."""
    weight = _balanced_weights(y, n_classes) if balanced else None
    if binary:
        pred = (z[:, 0] > 0).long()
        per_row = F.binary_cross_entropy_with_logits(z[:, 0], y.to(z.dtype), reduction="none")
    else:
        pred = z.argmax(1)
        per_row = F.cross_entropy(z, y, reduction="none")
    loss = per_row.mean() if weight is None else (weight * per_row).sum() / weight.sum()
    value, se = _balanced_accuracy(pred, y, n_classes)
    as_vector = [torch.tensor([v], dtype=torch.float64) for v in (value, se, float(loss))]
    return _Scores(*as_vector)


def _score_multilabel(z: Tensor, y: Tensor) -> _Scores:
    """Per-label validation F1, its approximate SE and the log-loss (L,) of logits (N, L) for targets (N, L)."""
    pred = (z > 0).to(y.dtype)
    f1, _ = _f1_per_label(pred, y)
    n_eff = ((pred.sum(0) + y.sum(0)).double() / 2).clamp(min=1)
    se = torch.sqrt(f1 * (1 - f1) / n_eff)
    loss = F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(0).double()
    return _Scores(f1.cpu(), se.cpu(), loss.cpu())


# ---------------------------------------------------------------------------------------------- C search


def _choose(cs: Tensor, scores: list[_Scores]) -> Tensor:
    """Index (G,) of the chosen fit per group, from the C (E, G) and validation scores of E fits.

    Among the fits whose metric is within one standard error of the group's best, the lowest log-loss wins.
    """
    metric = torch.stack([s.metric for s in scores])  # (E, G)
    se = torch.stack([s.se for s in scores])
    loss = torch.stack([s.loss for s in scores])
    best = metric.argmax(0, keepdim=True)
    band = metric.gather(0, best) - se.gather(0, best) - 1e-12
    return torch.where(metric >= band, loss, torch.full_like(loss, math.inf)).argmin(0)


def _search_c(
    fit: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]],
    score: Callable[[Tensor, Tensor], _Scores],
    cols: Tensor,
    w0: Tensor,
    b0: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Coarse C sweep, then a log-space bisection around each group's best C.

    Args:
        fit: ``fit(C per weight row (M,), w0, b0) -> (W (M, D), b (M,))`` on the fit split.
        score: ``score(W, b) -> _Scores`` on the validation split, one entry per group.
        cols: group (probe) index of each of the M weight rows (M,), on the CPU.
        w0, b0: initial weights (M, D) and intercepts (M,).

    Returns:
        The chosen C per group (G,) and that C's fitted weights (M, D) and intercepts (M,), to warm-start
        the refit from.
    """
    n_groups = int(cols.max()) + 1
    cs: list[Tensor] = []
    scores: list[_Scores] = []
    fits: list[tuple[Tensor, Tensor]] = []

    def evaluate(c: Tensor, w_init: Tensor, b_init: Tensor) -> None:
        w, b = fit(c[cols], w_init, b_init)
        cs.append(c)
        scores.append(score(w, b))
        fits.append((w, b))

    def pick(index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """C (G,), W (M, D), b (M,) of fit ``index[g]`` for each group g."""
        rows = index[cols].tolist()
        w = torch.stack([fits[e][0][m] for m, e in enumerate(rows)])
        b = torch.stack([fits[e][1][m] for m, e in enumerate(rows)])
        return torch.stack(cs).gather(0, index[None]).squeeze(0), w, b

    for e in _COARSE_LOG10:
        evaluate(torch.full((n_groups,), 10.0**e, dtype=torch.float64), *(fits[-1] if fits else (w0, b0)))
    for step in _FINE_STEPS:
        metric = torch.stack([s.metric for s in scores])  # (E, G)
        loss = torch.stack([s.loss for s in scores])
        # best so far: highest metric, ties broken by the lower log-loss
        best = torch.where(metric == metric.max(0).values, -loss, torch.full_like(loss, -math.inf)).argmax(0)
        centre = pick(best)[0]
        for sign in (-1.0, 1.0):
            c = centre * 10.0 ** (sign * step)
            log_gap = (torch.stack(cs).log10() - c.log10()).abs()  # (E, G)
            if bool((log_gap.min(0).values < 1e-9).all()):
                continue  # already fitted
            _, w_near, b_near = pick(log_gap.argmin(0))  # warm start from the closest C fitted so far
            evaluate(c, w_near, b_near)
    return pick(_choose(torch.stack(cs), scores))


# ------------------------------------------------------------------------------------------ public probes


def _encode_classes(train_y: Tensor, test_y: Tensor) -> tuple[Tensor, Tensor, int, int]:
    """Map the K train classes to [0, K) and test-only classes to K, K+1, …; returns (train, test, K, total)."""
    all_c = torch.unique(torch.cat([train_y, test_y]))
    in_train = torch.isin(all_c, train_y)
    k = int(in_train.sum())
    new_id = torch.empty_like(all_c)
    new_id[in_train] = torch.arange(k, device=all_c.device)
    new_id[~in_train] = torch.arange(k, all_c.numel(), device=all_c.device)
    tr = new_id[torch.searchsorted(all_c, train_y.contiguous())]
    te = new_id[torch.searchsorted(all_c, test_y.contiguous())]
    return tr, te, k, int(all_c.numel())


def probe_classification(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    seed: int = 0,
    val_fraction: float = 0.4,
    class_weight: str | None = "balanced",
    val_rows: int | None = None,
) -> ProbeResult:
    """Logistic-regression probe with the CLIP C sweep; balanced accuracy on the test rows.

    Args:
        train_x: probe-train features (N, D), float, finite.
        train_y: integer class ids (N,), at least two distinct values.
        test_x: test features (M, D) on any device (moved to ``train_x``'s).
        test_y: integer class ids (M,); a class absent from ``train_y`` counts with recall 0.
        seed: seed of the stratified hold-out split (the only randomness).
        val_fraction: share of the probe-train rows held out to choose C.
        class_weight: ``"balanced"`` (default) weights each row by ``N / (K · count of its class)``, as
            scikit-learn's option of that name, so the fitted loss matches the balanced-accuracy metric on
            imbalanced tasks (Trifeature's synergy task has ~10 % positives); None weights rows equally.
        val_rows: the last ``val_rows`` probe-train rows are a given validation split (e.g. a data set's
            published one) that chooses C instead of a random ``val_fraction``.

    Returns:
        ``ProbeResult`` with ``metric="balanced_accuracy"`` (mean per-class recall over the classes
        present in ``test_y``, %, chance = 100/K), ``extra={"accuracy": %}`` (and ``"auroc"``, %, for two
        classes both present in ``test_y``) and the chosen ``C``.

    Raises:
        ValueError: on non-2-d or non-finite features, mismatched lengths, non-integer labels or fewer than
            two classes in ``train_y``.
    """
    _check_features(train_x, test_x)
    _check_val_fraction(val_fraction)
    if class_weight not in ("balanced", None):
        raise ValueError(f"class_weight must be 'balanced' or None, got {class_weight!r}")
    for name, x, y in (("train_y", train_x, train_y), ("test_y", test_x, test_y)):
        _check_rows(name, x, y)
        if y.ndim != 1 or y.is_floating_point() or y.is_complex():
            raise ValueError(
                f"{name} must be integer class ids of shape (N,), got {y.dtype} {tuple(y.shape)}"
            )
    device = train_x.device
    train_y, test_y = train_y.to(device).long(), test_y.to(device).long()
    ytr, yte, k, n_all = _encode_classes(train_y, test_y)
    if k < 2:
        raise ValueError(f"train_y must hold at least 2 classes, got {k}")
    xtr, xte = _standardise(train_x, test_x.to(device))
    c, w, b = _logistic_protocol(xtr, ytr, k, seed, val_fraction, class_weight == "balanced", val_rows)
    z = F.linear(xte, w, b)
    pred = (z[:, 0] > 0).long() if k == 2 else z.argmax(1)
    bal, _ = _balanced_accuracy(pred, yte, n_all)
    acc = float((pred == yte).double().mean())
    extra = {"accuracy": 100.0 * acc}
    auroc = _auroc(z[:, 0], yte) if k == 2 else None
    if auroc is not None:
        extra["auroc"] = auroc
    return ProbeResult("balanced_accuracy", 100.0 * bal, extra, "C", (float(c[0]),))


def _logistic_protocol(
    xtr: Tensor,
    ytr: Tensor,
    k: int,
    seed: int,
    val_fraction: float,
    balanced: bool = True,
    val_rows: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Sweep C on a stratified hold-out, refit on all of ``xtr``; returns (C (1,), W (M, D), b (M,)).

    With ``balanced`` every class carries the same total weight in the loss (and in the validation log-loss),
    matching the balanced-accuracy metric: a 10 %-positive task is not fitted towards its majority class.
    """
    binary = k == 2
    m = 1 if binary else k
    dtype, device = xtr.dtype, xtr.device

    def target_of(y: Tensor) -> Tensor:
        return y[:, None].to(dtype) if binary else F.one_hot(y, k).to(dtype)

    def fit_on(x: Tensor, y: Tensor) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
        t = target_of(y)
        weight = _balanced_weights(y, k) if balanced else None

        def fit(c_cols: Tensor, w0: Tensor, b0: Tensor) -> tuple[Tensor, Tensor]:
            lam = (1.0 / (c_cols * x.shape[0])).to(dtype=dtype, device=device)
            return _fit_logistic(x, t, not binary, lam, w0, b0, weight=weight)

        return fit

    cols = torch.zeros(m, dtype=torch.long)
    w0 = torch.zeros(m, xtr.shape[1], dtype=dtype, device=device)
    b0 = _prior_logits(target_of(ytr), not binary, _balanced_weights(ytr, k) if balanced else None)
    fit_idx, val_idx = _split(xtr.shape[0], ytr, val_fraction, seed, val_rows)
    fit_idx, val_idx = fit_idx.to(device), val_idx.to(device)
    y_fit = ytr[fit_idx]
    if val_idx.numel() == 0 or int(torch.unique(y_fit).numel()) < 2:
        c = torch.ones(1, dtype=torch.float64)  # too few rows to hold any out: scikit-learn's default C
    else:
        x_fit, x_val, y_val = xtr[fit_idx], xtr[val_idx], ytr[val_idx]

        def score(w: Tensor, b: Tensor) -> _Scores:
            return _score_multiclass(F.linear(x_val, w, b), y_val, binary, k, balanced)

        c, w0, b0 = _search_c(fit_on(x_fit, y_fit), score, cols, w0, b0)
    w, b = fit_on(xtr, ytr)(c[cols], w0, b0)
    return c, w, b


def probe_multilabel(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    seed: int = 0,
    val_fraction: float = 0.4,
    label_names: Sequence[str] | None = None,
    val_rows: int | None = None,
) -> ProbeResult:
    """One binary logistic probe per label (each with its own C), solved jointly; F1 on the test rows.

    Args:
        train_x: probe-train features (N, D), float, finite.
        train_y: {0, 1} targets (N, L).
        test_x: test features (M, D).
        test_y: {0, 1} targets (M, L).
        seed: seed of the (unstratified) hold-out split.
        val_fraction: share of the probe-train rows held out to choose each label's C.
        label_names: optional L names; adds ``"f1/<name>"`` per-label scores to ``extra``.
        val_rows: the last ``val_rows`` probe-train rows are a given validation split (see
            :func:`probe_classification`).

    Returns:
        ``ProbeResult`` with ``metric="weighted_f1"`` (per-label F1 weighted by test support, %),
        ``extra["macro_f1"]`` (unweighted mean over the L labels, %), and one chosen C per label.
        Predictions threshold each label's probability at 0.5; an undefined F1 (no true and no predicted
        positive) counts as 0, as scikit-learn's ``zero_division=0``.

    Raises:
        ValueError: on bad shapes, non-finite features, mismatched lengths or non-binary targets.
    """
    _check_features(train_x, test_x)
    _check_val_fraction(val_fraction)
    for name, x, y in (("train_y", train_x, train_y), ("test_y", test_x, test_y)):
        _check_rows(name, x, y)
        if y.ndim != 2:
            raise ValueError(f"{name} must be multi-hot targets of shape (N, L), got {tuple(y.shape)}")
        if not bool(((y == 0) | (y == 1)).all()):
            raise ValueError(f"{name} must hold only 0 and 1 values")
    if train_y.shape[1] != test_y.shape[1]:
        raise ValueError(f"train_y has {train_y.shape[1]} labels but test_y has {test_y.shape[1]}")
    n_labels = int(train_y.shape[1])
    if label_names is not None and len(label_names) != n_labels:
        raise ValueError(f"label_names has {len(label_names)} names for {n_labels} labels")
    device = train_x.device
    xtr, xte = _standardise(train_x, test_x.to(device))
    dtype = xtr.dtype
    ytr, yte = train_y.to(device=device, dtype=dtype), test_y.to(device=device, dtype=dtype)

    def fit_on(x: Tensor, y: Tensor) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
        def fit(c_cols: Tensor, w0: Tensor, b0: Tensor) -> tuple[Tensor, Tensor]:
            lam = (1.0 / (c_cols * x.shape[0])).to(dtype=dtype, device=device)
            return _fit_logistic(x, y, False, lam, w0, b0)

        return fit

    cols = torch.arange(n_labels)
    w0 = torch.zeros(n_labels, xtr.shape[1], dtype=dtype, device=device)
    b0 = _prior_logits(ytr, softmax=False)
    fit_idx, val_idx = _split(xtr.shape[0], None, val_fraction, seed, val_rows)
    if val_idx.numel() == 0:
        c = torch.ones(n_labels, dtype=torch.float64)
    else:
        fit_idx, val_idx = fit_idx.to(device), val_idx.to(device)
        x_val, y_val = xtr[val_idx], ytr[val_idx]

        def score(w: Tensor, b: Tensor) -> _Scores:
            return _score_multilabel(F.linear(x_val, w, b), y_val)

        c, w0, b0 = _search_c(fit_on(xtr[fit_idx], ytr[fit_idx]), score, cols, w0, b0)
    w, b = fit_on(xtr, ytr)(c, w0, b0)
    pred = (F.linear(xte, w, b) > 0).to(dtype)
    f1, support = _f1_per_label(pred, yte)
    weighted = float((f1 * support).sum() / support.sum()) if float(support.sum()) > 0 else 0.0
    extra = {"macro_f1": 100.0 * float(f1.mean())}
    if label_names is not None:
        extra.update(
            {f"f1/{name}": 100.0 * float(v) for name, v in zip(label_names, f1.tolist(), strict=True)}
        )
    return ProbeResult("weighted_f1", 100.0 * weighted, extra, "C", tuple(float(v) for v in c))


# ------------------------------------------------------------------------------------------------- ridge


class _RidgePath:
    """Ridge solutions for any α from one eigendecomposition of centred features (N, D), float64."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x_mean, self.y_mean = x.mean(0), y.mean(0)
        xc, yc = x - self.x_mean, y - self.y_mean
        self.primal = x.shape[1] <= x.shape[0]
        self.xc = xc
        if self.primal:  # w = Q (S + α)^-1 Qᵀ Xᵀ y
            self.s, self.q = torch.linalg.eigh(xc.T @ xc)
            self.qty = self.q.T @ (xc.T @ yc)
        else:  # w = Xᵀ U (S + α)^-1 Uᵀ y
            self.s, self.q = torch.linalg.eigh(xc @ xc.T)
            self.qty = self.q.T @ yc
        self.s = self.s.clamp(min=0)

    def coef(self, alpha: float) -> tuple[Tensor, Tensor]:
        """Weights (D, T) and intercept (T,) for the strength ``alpha``."""
        inner = self.qty / (self.s + alpha)[:, None]
        w = self.q @ inner if self.primal else self.xc.T @ (self.q @ inner)
        return w, self.y_mean - self.x_mean @ w


def probe_regression(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    seed: int = 0,
    val_fraction: float = 0.4,
    val_rows: int | None = None,
) -> ProbeResult:
    """Ridge-regression probe with a held-out sweep of α; MSE on the test rows.

    α is swept over ``{1e-6, 1e-4, …, 1e6}`` then bisected in log10-space (±1, ±0.5, ±0.25) around the best,
    on a seeded 40 % hold-out; the lowest validation MSE wins; refit on train+val.

    Args:
        train_x: probe-train features (N, D), float, finite.
        train_y: float targets (N,) or (N, K), finite.
        test_x: test features (M, D).
        test_y: targets (M,) or (M, K).
        seed: seed of the hold-out split.
        val_fraction: share of the probe-train rows held out to choose α.
        val_rows: the last ``val_rows`` probe-train rows are a given validation split (see
            :func:`probe_classification`).

    Returns:
        ``ProbeResult`` with ``metric="mse"`` (mean over rows and targets, in target units²),
        ``extra={"r2": R² averaged over targets}`` and the chosen ``alpha``.

    Raises:
        ValueError: on bad shapes, non-finite values or mismatched lengths.
    """
    _check_features(train_x, test_x)
    _check_val_fraction(val_fraction)
    for name, x, y in (("train_y", train_x, train_y), ("test_y", test_x, test_y)):
        _check_rows(name, x, y)
        if y.ndim not in (1, 2):
            raise ValueError(f"{name} must have shape (N,) or (N, K), got {tuple(y.shape)}")
        if not bool(torch.isfinite(y.double()).all()):
            raise ValueError(f"{name} contains NaN or Inf values")
    if train_y.shape[1:] != test_y.shape[1:]:
        raise ValueError(f"train_y has shape {tuple(train_y.shape)} but test_y has {tuple(test_y.shape)}")
    device = train_x.device
    xtr, xte = _standardise(train_x, test_x.to(device))
    xtr, xte = xtr.double(), xte.double()
    ytr = train_y.to(device=device, dtype=torch.float64).reshape(train_y.shape[0], -1)
    yte = test_y.to(device=device, dtype=torch.float64).reshape(test_y.shape[0], -1)
    fit_idx, val_idx = _split(xtr.shape[0], None, val_fraction, seed, val_rows)
    alpha = 1.0
    if val_idx.numel() > 0 and fit_idx.numel() > 1:
        fit_idx, val_idx = fit_idx.to(device), val_idx.to(device)
        path = _RidgePath(xtr[fit_idx], ytr[fit_idx])
        x_val, y_val = xtr[val_idx], ytr[val_idx]
        tried: dict[float, float] = {}

        def val_mse(a: float) -> float:
            if a not in tried:
                w, b = path.coef(a)
                tried[a] = float((x_val @ w + b - y_val).square().mean())
            return tried[a]

        alpha = min((10.0**e for e in _COARSE_LOG10), key=val_mse)
        for step in _FINE_STEPS:
            alpha = min((alpha * 10.0**-step, alpha, alpha * 10.0**step), key=val_mse)
    w, b = _RidgePath(xtr, ytr).coef(alpha)
    err = xte @ w + b - yte
    mse = float(err.square().mean())
    ss_tot = (yte - yte.mean(0)).square().sum(0)
    r2 = 1.0 - err.square().sum(0) / ss_tot
    r2 = torch.where(ss_tot > 0, r2, torch.zeros_like(r2))
    return ProbeResult("mse", mse, {"r2": float(r2.mean())}, "alpha", (alpha,))


# ---------------------------------------------------------------------------------------------- several


def probe_tasks(
    train_x: Tensor,
    train_labels: Tensor,
    test_x: Tensor,
    test_labels: Tensor,
    task_names: Sequence[str],
    task_type: TaskType = "multiclass",
    seed: int = 0,
    val_fraction: float = 0.4,
    val_rows: int | None = None,
) -> dict[str, ProbeResult]:
    """Probe every task of a data set on the same frozen features (extracted once by the caller).

    Args:
        train_x: probe-train features (N, D).
        train_labels: (N,) or (N, K) label columns.
        test_x: test features (M, D).
        test_labels: (M,) or (M, K).
        task_names: names of the K label columns. For ``"multilabel"``/``"regression"`` the K columns form
            one task: give K column names (the result is keyed by ``task_type``) or one task name.
        task_type: ``"multiclass"`` — one classification probe per column; ``"multilabel"`` — all columns
            are one multi-label task; ``"regression"`` — all columns are one ridge target.
        seed: seed of the hold-out splits.
        val_fraction: share of the probe-train rows held out to choose the L2 strength.
        val_rows: the last ``val_rows`` probe-train rows are a given validation split that chooses it instead.

    Returns:
        ``{task name: ProbeResult}``.

    Raises:
        ValueError: on an unknown ``task_type``, a name count that does not match the label columns, or any
            error of the underlying probe.
    """
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {list(TASK_TYPES)}, got {task_type!r}")
    _check_features(train_x, test_x)
    _check_rows("train_labels", train_x, train_labels)
    _check_rows("test_labels", test_x, test_labels)
    tr = train_labels.reshape(train_labels.shape[0], -1)
    te = test_labels.reshape(test_labels.shape[0], -1)
    if tr.shape[1] != te.shape[1]:
        raise ValueError(f"train_labels has {tr.shape[1]} columns but test_labels has {te.shape[1]}")
    k = int(tr.shape[1])
    names = list(task_names)
    if task_type == "multiclass":
        if len(names) != k:
            raise ValueError(f"task_names has {len(names)} names for {k} label columns")
        return {
            name: probe_classification(
                train_x, tr[:, j], test_x, te[:, j], seed, val_fraction, val_rows=val_rows
            )
            for j, name in enumerate(names)
        }
    if len(names) not in (1, k):
        raise ValueError(f"task_names must have 1 or {k} names for {k} label columns, got {len(names)}")
    key = names[0] if len(names) == 1 else task_type
    if task_type == "multilabel":
        label_names = names if len(names) == k and k > 1 else None
        return {key: probe_multilabel(train_x, tr, test_x, te, seed, val_fraction, label_names, val_rows)}
    y_tr, y_te = (tr, te) if k > 1 else (tr[:, 0], te[:, 0])
    return {key: probe_regression(train_x, y_tr, test_x, y_te, seed, val_fraction, val_rows)}
