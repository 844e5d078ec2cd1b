"""Tests of the linear-probe protocol (commlearn.eval.probe)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, f1_score

from commlearn.eval import ProbeResult, probe_classification, probe_multilabel, probe_regression, probe_tasks
from commlearn.eval import probe as P


def _blobs(n: int, d: int, k: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian classes around random centres (scale ``spread``) with unit noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    centres = spread * torch.randn(k, d, generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def _noise(n: int, d: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, k, (n,), generator=g)


# ----------------------------------------------------------------------------------------- classification


def test_separable_data_is_probed_perfectly() -> None:
    x, y = _blobs(400, 16, 4, spread=3.0, seed=0)
    r = probe_classification(x[:300], y[:300], x[300:], y[300:])
    assert r.metric == "balanced_accuracy"
    assert r.score > 99.0 and r.extra["accuracy"] > 99.0
    assert r.reg_name == "C" and len(r.reg) == 1


def test_noise_features_give_chance_and_strong_regularisation() -> None:
    x, y = _noise(800, 16, 4, seed=1)
    r = probe_classification(x[:500], y[:500], x[500:], y[500:])
    assert abs(r.score - 25.0) < 8.0
    assert r.reg[0] <= 1e-2  # heavily regularised: no C helps on noise


def test_chosen_c_follows_signal_to_noise() -> None:
    for seed in range(2):
        xn, yn = _noise(400, 16, 4, seed=seed)
        xs, ys = _blobs(400, 16, 4, spread=2.0, seed=seed)
        noise = probe_classification(xn[:300], yn[:300], xn[300:], yn[300:], seed=seed, class_weight=None)
        signal = probe_classification(xs[:300], ys[:300], xs[300:], ys[300:], seed=seed, class_weight=None)
        assert noise.reg[0] <= 1e-2 < 1.0 <= signal.reg[0]
        # class-balanced loss (the default): still an order of magnitude more regularised on noise
        noise = probe_classification(xn[:300], yn[:300], xn[300:], yn[300:], seed=seed)
        signal = probe_classification(xs[:300], ys[:300], xs[300:], ys[300:], seed=seed)
        assert noise.reg[0] <= 1e-1 < 1.0 <= signal.reg[0]


def test_constant_features_balanced_accuracy_is_chance_where_accuracy_is_not() -> None:
    y = torch.cat([torch.zeros(240), torch.ones(40), torch.full((20,), 2.0)]).long()
    x = torch.full((300, 5), 3.0)
    yt = torch.cat([torch.zeros(80), torch.ones(14), torch.full((6,), 2.0)]).long()
    r = probe_classification(x, y, torch.full((100, 5), 3.0), yt)
    assert r.score == pytest.approx(100.0 / 3)
    assert r.extra["accuracy"] == pytest.approx(80.0)


def test_constant_column_among_informative_ones_is_harmless() -> None:
    x, y = _blobs(300, 8, 3, spread=3.0, seed=2)
    x[:, 3] = 7.0
    r = probe_classification(x[:200], y[:200], x[200:], y[200:])
    assert math.isfinite(r.score) and r.score > 95.0


def test_binary_task_matches_sklearn_binary_parametrisation() -> None:
    x, y = _blobs(300, 10, 2, spread=0.4, seed=3)
    xs, _ = P._standardise(x, x)
    lam = torch.full((1,), 1.0 / (0.1 * 300))
    w, b = P._fit_logistic(
        xs.double(),
        y[:, None].double(),
        False,
        lam.double(),
        torch.zeros(1, 10).double(),
        torch.zeros(1).double(),
        tol=1e-10,
    )
    sk = LogisticRegression(C=0.1, tol=1e-10, max_iter=1000).fit(xs.double().numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), sk.coef_, atol=1e-6)
    np.testing.assert_allclose(b.numpy(), sk.intercept_, atol=1e-6)


@pytest.mark.parametrize("c", [1e-3, 1.0, 100.0])
def test_multinomial_solver_matches_sklearn(c: float) -> None:
    x, y = _blobs(400, 12, 4, spread=0.5, seed=4)
    xs, _ = P._standardise(x, x)
    lam = torch.full((4,), 1.0 / (c * 400))
    target = torch.nn.functional.one_hot(y, 4).float()
    w, b = P._fit_logistic(xs, target, True, lam, torch.zeros(4, 12), torch.zeros(4))
    sk = LogisticRegression(C=c, tol=1e-4, max_iter=1000).fit(xs.double().numpy(), y.numpy())
    ours = (xs @ w.T + b).argmax(1).numpy()
    assert (ours == sk.predict(xs.double().numpy())).mean() > 0.99
    scale = max(1.0, float(np.abs(sk.coef_).max()))
    assert float(np.abs(w.double().numpy() - sk.coef_).max()) < 0.05 * scale


def test_multinomial_objective_is_sklearns_to_high_precision() -> None:
    x, y = _blobs(300, 8, 3, spread=0.5, seed=19)
    xs, _ = P._standardise(x.double(), x.double())
    lam = torch.full((3,), 1.0 / (0.5 * 300), dtype=torch.float64)
    target = torch.nn.functional.one_hot(y, 3).double()
    zeros = torch.zeros(3, 8, dtype=torch.float64)
    w, b = P._fit_logistic(xs, target, True, lam, zeros, zeros[:, 0], tol=1e-10)
    sk = LogisticRegression(C=0.5, tol=1e-10, max_iter=1000).fit(xs.numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), sk.coef_, atol=1e-6)
    # softmax intercepts are defined up to a constant: compare them centred
    np.testing.assert_allclose((b - b.mean()).numpy(), sk.intercept_ - sk.intercept_.mean(), atol=1e-6)


def _sklearn_protocol(xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor) -> float:
    """CLIP's protocol with scikit-learn: same split, coarse sweep + bisection, argmax of val accuracy."""
    xs, xt = P._standardise(xtr, xte)
    fit_idx, val_idx = P._split(xs.shape[0], ytr, 0.4, 0)
    x_np, y_np = xs.double().numpy(), ytr.numpy()
    scores: dict[float, float] = {}

    def val_score(c: float) -> float:
        if c not in scores:
            clf = LogisticRegression(C=c, max_iter=1000).fit(x_np[fit_idx], y_np[fit_idx])
            scores[c] = balanced_accuracy_score(y_np[val_idx], clf.predict(x_np[val_idx]))
        return scores[c]

    best = max((10.0**e for e in P._COARSE_LOG10), key=val_score)
    for step in P._FINE_STEPS:
        best = max((best * 10**-step, best, best * 10**step), key=val_score)
    clf = LogisticRegression(C=best, max_iter=1000).fit(x_np, y_np)
    return 100.0 * balanced_accuracy_score(yte.numpy(), clf.predict(xt.double().numpy()))


def test_protocol_agrees_with_sklearn_on_a_small_problem() -> None:
    x, y = _blobs(1000, 20, 5, spread=0.35, seed=5)
    ours = probe_classification(x[:600], y[:600], x[600:], y[600:])
    ref = _sklearn_protocol(x[:600], y[:600], x[600:], y[600:])
    assert 35.0 < ref < 95.0  # a problem that is neither trivial nor hopeless
    assert abs(ours.score - ref) < 3.0


def test_float64_features_give_the_same_result_as_float32() -> None:
    x, y = _blobs(400, 12, 3, spread=0.5, seed=6)
    r32 = probe_classification(x[:300], y[:300], x[300:], y[300:])
    r64 = probe_classification(x[:300].double(), y[:300], x[300:].double(), y[300:])
    assert abs(r32.score - r64.score) <= 1.0


def test_deterministic_given_seed() -> None:
    x, y = _blobs(300, 8, 3, spread=0.5, seed=7)
    a = probe_classification(x[:200], y[:200], x[200:], y[200:], seed=3)
    b = probe_classification(x[:200], y[:200], x[200:], y[200:], seed=3)
    assert a == b


def test_arbitrary_class_ids_small_n_and_classes_missing_from_val_or_train() -> None:
    # class 9 has a single training row: it can only live in the fit split, never in the validation split
    x, y = _blobs(60, 6, 3, spread=3.0, seed=8)
    ids = torch.tensor([-5, 4, 100])[y]
    ids[0] = 9
    # the test set holds a class (42) never seen in training: it counts with recall 0
    test_ids = ids[40:].clone()
    test_ids[:3] = 42
    r = probe_classification(x[:40], ids[:40], x[40:], test_ids)
    present = torch.unique(test_ids).numel()
    assert r.score <= 100.0 * (present - 1) / present + 1e-9
    assert r.score > 50.0


def test_tiny_training_set_falls_back_to_default_c() -> None:
    x = 10.0 * torch.eye(4)
    y = torch.tensor([0, 1, 2, 3])  # one row per class: nothing can be held out
    r = probe_classification(x, y, x, y)
    assert r.reg == (1.0,)
    assert r.score == pytest.approx(100.0)


def test_stratified_split_keeps_class_shares_and_every_class_in_fit() -> None:
    y = torch.cat([torch.zeros(100), torch.ones(10), torch.full((1,), 2.0)]).long()
    fit_idx, val_idx = P._split(111, y, 0.4, seed=0)
    assert sorted(torch.cat([fit_idx, val_idx]).tolist()) == list(range(111))
    assert torch.bincount(y[val_idx], minlength=3).tolist() == [40, 4, 0]
    assert torch.bincount(y[fit_idx], minlength=3).tolist() == [60, 6, 1]
    again, _ = P._split(111, y, 0.4, seed=0)
    assert torch.equal(fit_idx, again)


# ------------------------------------------------------------------------------------------- multi-label


def _multilabel(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    w = torch.randn(12, 5, generator=g)
    logits = x @ w + torch.tensor([0.0, -1.0, -2.0, 1.0, 0.5]) + 1.5 * torch.randn(n, 5, generator=g)
    return x, (logits > 0).long()


def test_multilabel_f1_matches_sklearn_at_the_chosen_c() -> None:
    x, y = _multilabel(600, seed=9)
    names = ["a", "b", "c", "d", "e"]
    r = probe_multilabel(x[:400], y[:400], x[400:], y[400:], label_names=names)
    assert r.metric == "weighted_f1" and len(r.reg) == 5
    xs, xt = P._standardise(x[:400], x[400:])
    pred = np.stack(
        [
            LogisticRegression(C=c, max_iter=1000).fit(xs.numpy(), y[:400, j].numpy()).predict(xt.numpy())
            for j, c in enumerate(r.reg)
        ],
        1,
    )
    y_true = y[400:].numpy()
    assert r.score == pytest.approx(
        100 * f1_score(y_true, pred, average="weighted", zero_division=0), abs=1.5
    )
    assert r.extra["macro_f1"] == pytest.approx(
        100 * f1_score(y_true, pred, average="macro", zero_division=0), abs=1.5
    )
    assert set(r.extra) == {"macro_f1", *(f"f1/{n}" for n in names)}
    assert r.score > 60.0


def test_multilabel_f1_helper_matches_sklearn_definitions() -> None:
    g = torch.Generator().manual_seed(10)
    pred, y = torch.randint(0, 2, (50, 4), generator=g), torch.randint(0, 2, (50, 4), generator=g)
    y[:, 3] = 0
    pred[:, 3] = 0  # an empty label: F1 undefined, counted as 0
    f1, _ = P._f1_per_label(pred, y)
    np.testing.assert_allclose(f1.numpy(), f1_score(y.numpy(), pred.numpy(), average=None, zero_division=0))


def test_multilabel_handles_labels_never_or_always_on() -> None:
    x, y = _multilabel(200, seed=20)
    y[:, 0] = 0
    y[:, 1] = 1
    r = probe_multilabel(x[:150], y[:150], x[150:], y[150:], label_names=list("abcde"))
    assert r.extra["f1/a"] == 0.0 and r.extra["f1/b"] == 100.0
    assert all(math.isfinite(v) for v in (r.score, *r.extra.values(), *r.reg))


# -------------------------------------------------------------------------------------------- regression


def test_regression_matches_sklearn_ridge_and_learns() -> None:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(500, 10, generator=g)
    y = x @ torch.randn(10, 2, generator=g) + 0.3 * torch.randn(500, 2, generator=g)
    r = probe_regression(x[:350], y[:350], x[350:], y[350:])
    assert r.metric == "mse" and r.reg_name == "alpha"
    xs, xt = P._standardise(x[:350].double(), x[350:].double())
    sk = Ridge(alpha=r.reg[0]).fit(xs.numpy(), y[:350].numpy())
    sk_mse = float(((sk.predict(xt.numpy()) - y[350:].numpy()) ** 2).mean())
    assert r.score == pytest.approx(sk_mse, rel=1e-5)
    assert r.score < 0.2 and r.extra["r2"] > 0.9


def test_ridge_path_kernel_form_equals_primal_form() -> None:
    g = torch.Generator().manual_seed(12)
    x, y = torch.randn(20, 50, generator=g).double(), torch.randn(20, 1, generator=g).double()
    w_dual, b_dual = P._RidgePath(x, y).coef(3.0)
    sk = Ridge(alpha=3.0).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(w_dual[:, 0].numpy(), np.ravel(sk.coef_), atol=1e-8)
    np.testing.assert_allclose(b_dual.numpy(), np.ravel(sk.intercept_), atol=1e-8)


def test_regression_with_a_handful_of_rows_uses_the_default_alpha() -> None:
    x, y = torch.randn(2, 3), torch.tensor([1.0, 2.0])
    r = probe_regression(x, y, x, y)
    assert r.reg == (1.0,) and math.isfinite(r.score)


def test_regression_on_noise_chooses_strong_regularisation() -> None:
    g = torch.Generator().manual_seed(13)
    x, y = torch.randn(300, 20, generator=g), torch.randn(300, generator=g)
    r = probe_regression(x[:200], y[:200], x[200:], y[200:])
    assert r.reg[0] >= 100.0
    assert r.score == pytest.approx(float(y[200:].var(unbiased=False) + y[:200].mean().square()), rel=0.15)


# ------------------------------------------------------------------------------------------ several tasks


def test_probe_tasks_multiclass_uses_each_column() -> None:
    x, y = _blobs(300, 8, 3, spread=3.0, seed=14)
    noise_labels = torch.randint(0, 2, (300,), generator=torch.Generator().manual_seed(0))
    labels = torch.stack([y, noise_labels], 1)
    out = probe_tasks(x[:200], labels[:200], x[200:], labels[200:], ["R", "S"])
    assert set(out) == {"R", "S"}
    assert out["R"].score > 95.0 and abs(out["S"].score - 50.0) < 15.0
    json.dumps({k: v.to_dict() for k, v in out.items()})


def test_probe_tasks_multilabel_and_regression_are_one_task() -> None:
    x, y = _multilabel(300, seed=15)
    out = probe_tasks(x[:200], y[:200], x[200:], y[200:], list("abcde"), task_type="multilabel")
    assert list(out) == ["multilabel"] and "f1/a" in out["multilabel"].extra
    reg = probe_tasks(x[:200], y[:200].float(), x[200:], y[200:].float(), ["genres"], task_type="regression")
    assert list(reg) == ["genres"] and reg["genres"].metric == "mse"


def test_result_to_dict_is_json_ready() -> None:
    r = ProbeResult("balanced_accuracy", 50.0, {"accuracy": 60.0}, "C", (0.1,))
    assert json.loads(json.dumps(r.to_dict())) == {
        "metric": "balanced_accuracy",
        "score": 50.0,
        "extra": {"accuracy": 60.0},
        "reg_name": "C",
        "reg": [0.1],
    }


# ------------------------------------------------------------------------------------------------ errors


def test_errors_are_one_line_value_errors() -> None:
    x, y = _blobs(20, 4, 2, spread=1.0, seed=16)
    with pytest.raises(ValueError, match="train_y has 19 rows but the features have 20"):
        probe_classification(x, y[:19], x, y)
    with pytest.raises(ValueError, match="train_x has 4 features but test_x has 3"):
        probe_classification(x, y, x[:, :3], y)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="test_x contains NaN or Inf"):
        probe_classification(x, y, bad, y)
    with pytest.raises(ValueError, match="train_y must hold at least 2 classes, got 1"):
        probe_classification(x, torch.zeros(20, dtype=torch.long), x, y)
    with pytest.raises(ValueError, match="train_y must be integer class ids"):
        probe_classification(x, y.float(), x, y)
    with pytest.raises(ValueError, match=r"train_x must be a 2-d tensor \(N, D\), got \(20, 2, 2\)"):
        probe_classification(x.view(20, 2, 2), y, x, y)
    with pytest.raises(ValueError, match="train_x must be floating point"):
        probe_classification(x.long(), y, x, y)
    with pytest.raises(ValueError, match="train_x must have at least one row"):
        probe_classification(x[:0], y[:0], x, y)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\), got 1.5"):
        probe_classification(x, y, x, y, val_fraction=1.5)
    with pytest.raises(ValueError, match="train_y must be a tensor"):
        probe_classification(x, y.numpy(), x, y)  # type: ignore[arg-type]


def test_multilabel_and_regression_errors() -> None:
    x, y = _multilabel(20, seed=17)
    with pytest.raises(ValueError, match=r"train_y must be multi-hot targets of shape \(N, L\)"):
        probe_multilabel(x, y[:, 0], x, y)
    with pytest.raises(ValueError, match="test_y must hold only 0 and 1 values"):
        probe_multilabel(x, y, x, 2 * y)
    with pytest.raises(ValueError, match="train_y has 5 labels but test_y has 4"):
        probe_multilabel(x, y, x, y[:, :4])
    with pytest.raises(ValueError, match="label_names has 2 names for 5 labels"):
        probe_multilabel(x, y, x, y, label_names=["a", "b"])
    with pytest.raises(ValueError, match="train_y contains NaN or Inf"):
        probe_regression(x, torch.full((20,), float("inf")), x, torch.zeros(20))
    with pytest.raises(ValueError, match=r"train_y must have shape \(N,\) or \(N, K\)"):
        probe_regression(x, torch.zeros(20, 2, 2), x, torch.zeros(20, 2, 2))
    with pytest.raises(ValueError, match=r"train_y has shape \(20, 2\) but test_y has \(20,\)"):
        probe_regression(x, torch.zeros(20, 2), x, torch.zeros(20))


def test_probe_tasks_errors() -> None:
    x, y = _blobs(20, 4, 2, spread=1.0, seed=18)
    labels = torch.stack([y, y], 1)
    with pytest.raises(ValueError, match="task_type must be one of"):
        probe_tasks(x, labels, x, labels, ["a", "b"], task_type="ranking")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task_names has 1 names for 2 label columns"):
        probe_tasks(x, labels, x, labels, ["a"])
    with pytest.raises(ValueError, match="task_names must have 1 or 2 names for 2 label columns, got 3"):
        probe_tasks(x, labels, x, labels, ["a", "b", "c"], task_type="multilabel")
    with pytest.raises(ValueError, match="train_labels has 2 columns but test_labels has 1"):
        probe_tasks(x, labels, x, y, ["a", "b"])
    with pytest.raises(ValueError, match="test_labels has 19 rows but the features have 20"):
        probe_tasks(x, labels, x, labels[:19], ["a", "b"])


@pytest.mark.slow
def test_torch_solver_gives_sklearns_score_in_the_same_protocol() -> None:
    """Whole protocol on 10 000 × 512, 10 classes: every fit by our L-BFGS vs by scikit-learn's lbfgs (warm
    started alike) gives the same test score within half a point. (No timing here: the measured times of both
    are in ``commlearn.eval.probe``'s docstring.)"""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (12000,), generator=g)
    proj = torch.randn(32, 512, generator=g) / math.sqrt(32)
    x = (0.35 * torch.randn(10, 32, generator=g)[y] + torch.randn(12000, 32, generator=g)) @ proj
    x = x + 0.5 * torch.randn(12000, 512, generator=g)

    def sklearn_fit(xf, t, softmax, lam, w0, b0, max_iter=1000, tol=1e-4, weight=None):  # type: ignore[no-untyped-def]
        clf = LogisticRegression(C=1.0 / (float(lam[0]) * xf.shape[0]), max_iter=max_iter, tol=tol)
        clf.set_params(warm_start=True)
        clf.coef_, clf.intercept_ = w0.double().numpy().copy(), b0.double().numpy().copy()
        sample_weight = None if weight is None else weight.double().numpy()
        clf.fit(
            xf.double().numpy(), (t.argmax(1) if softmax else t[:, 0]).numpy(), sample_weight=sample_weight
        )
        return torch.from_numpy(clf.coef_).to(xf.dtype), torch.from_numpy(clf.intercept_).to(xf.dtype)

    ours = probe_classification(x[:10000], y[:10000], x[10000:], y[10000:])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "_fit_logistic", sklearn_fit)
        theirs = probe_classification(x[:10000], y[:10000], x[10000:], y[10000:])
    assert abs(ours.score - theirs.score) <= 0.5


def test_class_balanced_fit_matches_sklearn_and_helps_a_rare_class() -> None:
    """An imbalanced binary task (10 % positives, weak signal): the balanced loss equals scikit-learn's
    ``class_weight="balanced"`` fit and scores a higher balanced accuracy than the unweighted fit."""
    g = torch.Generator().manual_seed(7)
    n = 3000
    y = (torch.rand(n, generator=g) < 0.1).long()
    x = torch.randn(n, 8, generator=g) + 0.6 * y[:, None].float()
    xs, _ = P._standardise(x, x)
    weight = P._balanced_weights(y, 2)
    lam = torch.full((1,), 1.0 / (0.5 * n), dtype=xs.dtype)
    w, b = P._fit_logistic(xs, y[:, None].to(xs.dtype), False, lam, torch.zeros(1, 8), torch.zeros(1), tol=1e-10,
                           weight=weight)  # fmt: skip
    sk = LogisticRegression(C=0.5, tol=1e-10, max_iter=1000, class_weight="balanced").fit(
        xs.numpy(), y.numpy()
    )
    np.testing.assert_allclose(w.numpy(), sk.coef_, atol=1e-4)  # float32 solves on both sides
    np.testing.assert_allclose(b.numpy(), sk.intercept_, atol=1e-4)
    balanced = probe_classification(x[:2000], y[:2000], x[2000:], y[2000:])
    plain = probe_classification(x[:2000], y[:2000], x[2000:], y[2000:], class_weight=None)
    assert balanced.score > plain.score + 5.0
    with pytest.raises(ValueError, match="class_weight must be 'balanced' or None"):
        probe_classification(x[:2000], y[:2000], x[2000:], y[2000:], class_weight="auto")


def test_a_given_validation_split_chooses_the_strength() -> None:
    """``val_rows``: the last rows are the validation part (a published split), not a random hold-out."""
    from commlearn.eval.probe import _split

    fit_idx, val_idx = _split(10, torch.arange(10) % 2, 0.4, 0, val_rows=3)
    assert fit_idx.tolist() == list(range(7)) and val_idx.tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="val_rows must be in 1..9"):
        _split(10, None, 0.4, 0, val_rows=10)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    x = torch.randn(300, 5, generator=g) + 3 * torch.nn.functional.one_hot(y, 5).float()
    given = probe_tasks(x, y[:, None], x[:60], y[:60, None], ["t"], val_rows=100)["t"]
    drawn = probe_tasks(x, y[:, None], x[:60], y[:60, None], ["t"])["t"]
    assert given.score > 80 and drawn.score > 80
