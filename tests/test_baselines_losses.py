"""Baseline losses (SupCon, CMC, FactorCL) and method pieces against slow NumPy references, closed forms and
gradient routing; every error path of the baseline losses and methods."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from commlearn.config import ConfigError, ModelConfig, TaskInfo
from commlearn.data.base import ModalitySpec, MultimodalBatch
from commlearn.losses import (
    CMCLoss,
    CrossLoss,
    CrossSelfLoss,
    FactorCLLoss,
    PairCritic,
    SupConLoss,
    cross_view_nce,
    info_nce,
    nce_club_upper_bound,
    nce_lower_bound,
)
from commlearn.methods import (
    CMC,
    CrossSelf,
    FactorCL,
    FactorCLSup,
    SimCLR,
    Supervised,
    UnimodalEncoders,
    build_method,
    load_encoder_weights,
)
from commlearn.methods.supervised import select_targets


def _np(x: Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- SupCon ---------------------------------------------------------------------------------------------


def _ref_supcon(views: list[np.ndarray], labels: np.ndarray, tau: float) -> float:
    """Khosla et al. Eq. 2, one anchor at a time; anchors without a positive are skipped."""
    items = [(_unit(v)[k], labels[k]) for v in views for k in range(v.shape[0])]
    losses = []
    for a, (za, ya) in enumerate(items):
        others = [b for b in range(len(items)) if b != a]
        pos = [p for p in others if items[p][1] == ya]
        if not pos:
            continue
        denom = math.log(sum(math.exp(float(za @ items[b][0]) / tau) for b in others))
        losses.append(-np.mean([float(za @ items[p][0]) / tau - denom for p in pos]))
    return float(np.mean(losses)) if losses else 0.0


@pytest.mark.parametrize(
    "b,v,d,tau,classes", [(2, 2, 3, 0.1, 2), (5, 2, 4, 0.5, 3), (6, 3, 8, 0.07, 2), (4, 1, 5, 0.2, 3)]
)
def test_supcon_matches_reference(b: int, v: int, d: int, tau: float, classes: int) -> None:
    g = torch.Generator().manual_seed(b * 10 + v)
    views = [torch.randn(b, d, generator=g) for _ in range(v)]
    labels = torch.randint(0, classes, (b,), generator=g)
    got = SupConLoss(tau)(views, labels).item()
    want = _ref_supcon([_np(x) for x in views], labels.numpy(), tau)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_supcon_without_positives() -> None:
    # one view, distinct labels except samples 0 and 1: only those two anchors count
    z = torch.randn(5, 4, requires_grad=True)
    labels = torch.tensor([7, 7, 1, 2, 3])
    out = SupConLoss(0.2).compute([z], labels)
    assert out.terms["with_positive"].item() == pytest.approx(0.4)
    assert out.loss.item() == pytest.approx(_ref_supcon([_np(z)], labels.numpy(), 0.2), rel=1e-5)
    # nobody has a positive: a zero loss that still backpropagates (no NaN)
    out = SupConLoss(0.2).compute([z], torch.arange(5))
    out.loss.backward()
    assert out.loss.item() == 0.0 and torch.isfinite(z.grad).all()  # type: ignore[arg-type]


def test_supcon_with_distinct_labels_is_nt_xent() -> None:
    # two views, all labels distinct: P(a) is the other view only, A(a) all 2B−1 others = DESIGN §3's NCE
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    assert SupConLoss(0.1)([a, b], torch.arange(6)).item() == pytest.approx(
        info_nce(a, b, 0.1).item(), rel=1e-5
    )


# --- CMC ------------------------------------------------------------------------------------------------


def _ref_one_way(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    a, b = _unit(a), _unit(b)
    total = 0.0
    for k in range(a.shape[0]):
        logits = [float(a[k] @ b[m]) / tau for m in range(b.shape[0])]
        total += math.log(sum(math.exp(x) for x in logits)) - logits[k]
    return total / a.shape[0]


def _ref_cmc(z1: list[np.ndarray], z2: list[np.ndarray], tau: float) -> float:
    n = len(z1)
    terms = [
        0.5 * (_ref_one_way(z1[i], z2[j], tau) + _ref_one_way(z2[j], z1[i], tau))
        for i, j in itertools.permutations(range(n), 2)
    ]
    return float(np.mean(terms))


@pytest.mark.parametrize("b,d,n,tau", [(2, 3, 2, 0.1), (5, 4, 3, 0.5), (7, 8, 4, 0.07)])
def test_cmc_matches_reference(b: int, d: int, n: int, tau: float) -> None:
    g = torch.Generator().manual_seed(b + n)
    z1 = [torch.randn(b, d, generator=g) for _ in range(n)]
    z2 = [torch.randn(b, d, generator=g) for _ in range(n)]
    out = CMCLoss(tau).compute(z1, z2)
    assert out.loss.item() == pytest.approx(
        _ref_cmc([_np(z) for z in z1], [_np(z) for z in z2], tau), rel=1e-5
    )
    assert len(out.terms) == n * (n - 1)


def test_cmc_differs_from_cross_and_has_no_intra_modality_negatives() -> None:
    # orthogonal unit embeddings, both views equal: a B-way softmax → log(e^{1/τ} + B − 1) − 1/τ per term,
    # whereas Cross's 2B-way NT-Xent also counts the B − 1 intra-modality negatives
    b, tau = 4, 0.5
    z = [torch.eye(b), torch.eye(b)]
    want = math.log(math.exp(1 / tau) + b - 1) - 1 / tau
    assert CMCLoss(tau)(z, z).item() == pytest.approx(want, rel=1e-5)
    assert CrossLoss(tau)(z).item() == pytest.approx(
        math.log(math.exp(1 / tau) + 2 * b - 2) - 1 / tau, rel=1e-5
    )
    loss, acc = cross_view_nce(torch.eye(b), torch.eye(b), tau)
    assert loss.item() == pytest.approx(want, rel=1e-5) and acc.item() == 1.0


# --- FactorCL -------------------------------------------------------------------------------------------


def _ref_critic(critic: PairCritic) -> Callable[[np.ndarray, np.ndarray], float]:
    """The critic as a plain MLP on the concatenated pair [a; b] (first layer W = [W_a | W_b])."""
    w1 = np.concatenate([_np(critic.proj_a.weight), _np(critic.proj_b.weight)], axis=1)
    b1 = _np(critic.proj_a.bias)
    layers: list[Any] = list(critic.hidden)
    hidden = [(_np(layer.weight), _np(layer.bias)) for layer in layers]
    w_out, b_out = _np(critic.out.weight), _np(critic.out.bias)

    def f(a: np.ndarray, b: np.ndarray) -> float:
        h = np.maximum(w1 @ np.concatenate([a, b]) + b1, 0.0)
        for w, c in hidden:
            h = np.maximum(w @ h + c, 0.0)
        return float((w_out @ h + b_out)[0])

    return f


def _ref_scores(critic: PairCritic, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    f = _ref_critic(critic)
    return np.array([[f(a[k], b[m]) for m in range(b.shape[0])] for k in range(a.shape[0])])


def _ref_nce(s: np.ndarray) -> float:
    n = s.shape[0]
    return float(
        np.mean([s[k, k] - math.log(sum(math.exp(x) for x in s[k])) for k in range(n)]) + math.log(n)
    )


def _ref_club(s: np.ndarray) -> float:
    n = s.shape[0]
    off = [s[k, m] for k in range(n) for m in range(n) if k != m]
    return float(np.mean(np.diag(s)) - np.mean(off))


def _ref_factorcl(loss: FactorCLLoss, inp: dict[str, list[Tensor]]) -> tuple[float, float]:
    """``(L_enc, L_critic)`` of FactorCLLoss's docstring, from slow per-pair critic evaluations."""
    s, u, sc, uc, t = (
        [_np(x) for x in inp[k]] for k in ("shared", "unique", "shared_cond", "unique_cond", "targets")
    )
    n_pairs = len(loss.pairs)
    enc = crit = 0.0
    for p, (i, j) in enumerate(loss.pairs):
        sci, scj = np.concatenate([s[i], sc[i]], 1), np.concatenate([s[j], sc[j]], 1)
        uci, ucj = np.concatenate([u[i], uc[i]], 1), np.concatenate([u[j], uc[j]], 1)
        club_sc = _ref_scores(loss.shared_club_cond[p], sci, scj)  # type: ignore[arg-type]
        club_u = _ref_scores(loss.unique_club[p], u[i], u[j])  # type: ignore[arg-type]
        enc += (
            -_ref_nce(_ref_scores(loss.shared_nce[p], s[i], s[j]))  # type: ignore[arg-type]
            + _ref_club(club_sc)
            - _ref_nce(_ref_scores(loss.unique_nce_cond[p], uci, ucj))  # type: ignore[arg-type]
            + _ref_club(club_u)
        ) / n_pairs
        crit -= (_ref_nce(club_sc) + _ref_nce(club_u)) / n_pairs
    for i in range(loss.n_modalities):
        enc -= _ref_nce(_ref_scores(loss.unique_target[i], u[i], t[i]))  # type: ignore[arg-type]
    return enc, crit


def _factor_inputs(
    n: int, b: int, d: int, c: int, t: int, seed: int, dtype: torch.dtype = torch.float32
) -> dict[str, list[Tensor]]:
    g = torch.Generator().manual_seed(seed)
    widths = {"shared": d, "unique": d, "shared_cond": c, "unique_cond": c, "targets": t}
    return {k: [torch.randn(b, w, generator=g, dtype=dtype) for _ in range(n)] for k, w in widths.items()}


@pytest.mark.parametrize("a_dim,b_dim,hidden,layers", [(3, 2, 5, 0), (2, 4, 6, 1), (3, 3, 4, 2)])
def test_pair_critic_is_an_mlp_on_concatenated_pairs(
    a_dim: int, b_dim: int, hidden: int, layers: int
) -> None:
    torch.manual_seed(a_dim + layers)
    critic = PairCritic(a_dim, b_dim, hidden, layers)
    a, b = torch.randn(4, a_dim), torch.randn(4, b_dim)
    np.testing.assert_allclose(_np(critic(a, b)), _ref_scores(critic, _np(a), _np(b)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(critic(a, b, frozen=True)), _np(critic(a, b)), rtol=1e-6)


def test_nce_and_club_estimators_match_reference() -> None:
    s = torch.randn(6, 6)
    assert nce_lower_bound(s).item() == pytest.approx(_ref_nce(_np(s)), rel=1e-5, abs=1e-6)
    assert nce_club_upper_bound(s).item() == pytest.approx(_ref_club(_np(s)), rel=1e-5, abs=1e-6)
    # a critic that ignores its inputs carries no information: both estimates are 0
    assert nce_lower_bound(torch.full((5, 5), 3.0)).item() == pytest.approx(0.0, abs=1e-6)
    assert nce_club_upper_bound(torch.full((5, 5), 3.0)).item() == pytest.approx(0.0, abs=1e-6)
    # InfoNCE can never exceed log B
    assert nce_lower_bound(100.0 * torch.eye(8)).item() == pytest.approx(math.log(8), rel=1e-5)


@pytest.mark.parametrize("n,b,d,c,t", [(2, 3, 2, 2, 2), (2, 4, 3, 1, 2), (3, 3, 2, 3, 1)])
def test_factorcl_loss_matches_reference(n: int, b: int, d: int, c: int, t: int) -> None:
    torch.manual_seed(n * 7 + b)
    loss_fn = FactorCLLoss(n, d, c, t, critic_hidden=6, critic_layers=1)
    inp = _factor_inputs(n, b, d, c, t, seed=b)
    out = loss_fn.compute(**inp)
    enc, crit = _ref_factorcl(loss_fn, inp)
    assert out.loss.item() == pytest.approx(enc + crit, rel=1e-4, abs=1e-5)
    assert out.terms["critic_loss"].item() == pytest.approx(crit, rel=1e-4, abs=1e-5)
    assert len([k for k in out.terms if k.startswith("nce_shared_")]) == n * (n - 1) // 2
    assert len([k for k in out.terms if k.startswith("nce_unique_target_")]) == n


def test_factorcl_gradients_reach_the_right_parameters() -> None:
    """Representations get ∂L_enc (CLUB critics frozen); CLUB critics get ∂L_critic (inputs detached)."""
    torch.manual_seed(0)
    loss_fn = FactorCLLoss(2, 2, 2, 2, critic_hidden=5).double()
    inp = _factor_inputs(2, 3, 2, 2, 2, seed=1, dtype=torch.float64)
    for xs in inp.values():
        for x in xs:
            x.requires_grad_(True)
    loss_fn.compute(**inp).loss.backward()
    # (1) the CLUB critics' gradients are those of their own InfoNCE training loss alone
    ref = copy.deepcopy(loss_fn)
    ref.zero_grad()
    sc = [torch.cat([inp["shared"][i], inp["shared_cond"][i]], 1).detach() for i in range(2)]
    fit = -nce_lower_bound(ref.shared_club_cond[0](*sc)) - nce_lower_bound(
        ref.unique_club[0](inp["unique"][0].detach(), inp["unique"][1].detach())
    )
    fit.backward()
    for mine, want in zip(
        [*loss_fn.shared_club_cond.parameters(), *loss_fn.unique_club.parameters()],
        [*ref.shared_club_cond.parameters(), *ref.unique_club.parameters()],
        strict=True,
    ):
        assert torch.allclose(mine.grad, want.grad, atol=1e-10)  # type: ignore[arg-type]
    # (2) the representations' gradients are the finite differences of L_enc (slow reference, critics fixed)
    eps = 1e-6
    for key, i, k, m in [
        ("shared", 0, 1, 0),
        ("unique", 1, 2, 1),
        ("shared_cond", 1, 0, 1),
        ("targets", 0, 2, 0),
    ]:
        x = inp[key][i]
        with torch.no_grad():
            x[k, m] += eps
            plus = _ref_factorcl(loss_fn, inp)[0]
            x[k, m] -= 2 * eps
            minus = _ref_factorcl(loss_fn, inp)[0]
            x[k, m] += eps
        grad = x.grad[k, m].item()  # type: ignore[index]
        assert grad == pytest.approx((plus - minus) / (2 * eps), rel=1e-4, abs=1e-7)


def test_nce_and_club_sandwich_the_true_mutual_information() -> None:
    # correlated Gaussians, 2 dims with ρ = 0.8: I = −log(1 − ρ²) ≈ 1.02 nats. Train one critic on InfoNCE,
    # then I_NCE ≤ I ≤ I_NCE-CLUB (with the InfoNCE-optimal critic the latter is 2ρ²/(1 − ρ²) ≈ 3.6).
    torch.manual_seed(0)
    rho, dims = 0.8, 2
    true_mi = -dims / 2 * math.log(1 - rho**2)

    def sample(n: int) -> tuple[Tensor, Tensor]:
        a = torch.randn(n, dims)
        return a, rho * a + math.sqrt(1 - rho**2) * torch.randn(n, dims)

    critic = PairCritic(dims, dims, hidden=32, layers=1)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(250):
        loss = -nce_lower_bound(critic(*sample(128)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # averaged over 8 fresh batches of 512 pairs (the bounds hold in expectation)
        est = torch.tensor(
            [[nce_lower_bound(s), nce_club_upper_bound(s)] for s in (critic(*sample(512)) for _ in range(8))]
        )
    nce, club = est.mean(dim=0).tolist()
    assert 0.8 * true_mi < nce < true_mi + 0.05
    assert club > true_mi + 0.5


class _ShiftAugment(nn.Module):
    """Deterministic two views: (x, x + 1)."""

    def forward(self, inputs: list[Tensor], padding: Any = None) -> tuple[list[Tensor], list[Tensor]]:
        return list(inputs), [x + 1.0 for x in inputs]


def _vector_specs(n: int = 2, dim: int = 6) -> list[ModalitySpec]:
    return [ModalitySpec(f"m{i}", "vector", (dim,)) for i in range(n)]


_SMALL = ModelConfig(embed_dim=8, n_heads=2, head_hidden=[8], head_out=4, vector_dim=8, head_batch_norm=False)


def test_factorcl_conditions_on_the_augmented_view() -> None:
    """The conditional terms see [Z(x); Z(x')] — not Z(x) twice (pliang279/FactorCL issue #4)."""
    specs = _vector_specs()
    method = build_method("factorcl", specs, _SMALL, _ShiftAugment(), options={"critic_hidden": 4})
    assert isinstance(method, FactorCL)
    seen: dict[str, Any] = {}
    real = method.loss_fn.compute

    def spy(*args: Any) -> Any:
        seen["args"] = args
        return real(*args)

    method.loss_fn.compute = spy  # type: ignore[method-assign,assignment]
    batch = MultimodalBatch([torch.randn(5, 6), torch.randn(5, 6)])
    method.compute_loss(batch)
    shared, unique, shared_cond, unique_cond, targets = seen["args"]
    s_aug, u_aug = method.factors([x + 1.0 for x in batch.inputs], batch.padding)
    s_clean, _ = method.factors(batch.inputs, batch.padding)
    for i in range(2):
        assert torch.allclose(shared[i], s_clean[i], atol=1e-6)
        assert torch.allclose(shared_cond[i], s_aug[i], atol=1e-6)
        assert not torch.allclose(shared_cond[i], shared[i])
        assert torch.allclose(unique_cond[i], u_aug[i], atol=1e-6) and torch.allclose(
            targets[i], u_aug[i], atol=1e-6
        )
    features = method.embed(batch)
    assert features.shape == (5, 4 * 4)  # [S_1, U_1, S_2, U_2], head_out = 4 each


def test_factorcl_sup_conditions_on_one_hot_labels() -> None:
    method = build_method("factorcl_sup", _vector_specs(3), _SMALL, None, task=TaskInfo("multiclass", 3, 1))
    assert isinstance(method, FactorCLSup)
    labels = torch.tensor([[0, 2], [1, 0], [0, 1], [5, 2]])
    y = method.encode_labels(labels)
    assert torch.equal(y, torch.eye(3)[[2, 0, 1, 2]])
    out = method.compute_loss(MultimodalBatch([torch.randn(4, 6) for _ in range(3)], labels=labels))
    assert set(out.accuracies) == {
        "shared_m0_m1",
        "shared_m0_m2",
        "shared_m1_m2",
        *[f"unique_target_m{i}" for i in range(3)],
    }
    reg = build_method("factorcl_sup", _vector_specs(), _SMALL, None, task=TaskInfo("regression", 2, 0))
    assert torch.equal(reg.encode_labels(torch.ones(3, 2)), torch.ones(3, 2))  # type: ignore[operator]


def test_select_targets_per_task_type() -> None:
    labels = torch.tensor([[1, 0], [2, 1]])
    assert torch.equal(select_targets(labels, "multiclass", 1, "m"), torch.tensor([0, 1]))
    assert select_targets(torch.tensor([0.5, 1.0]), "regression", 0, "m").shape == (2, 1)
    assert select_targets(labels, "multilabel", 0, "m").dtype == torch.float32


def test_cross_self_gives_its_options_to_its_loss() -> None:
    """The step loss of ``cross_self`` with τ 0.2 and ssl_scale 0.25 is CrossSelfLoss(0.2, 0.25) on its projected
    views (identical without augmentation); Cross takes no ssl_scale."""
    specs = _vector_specs()
    method = build_method("cross_self", specs, _SMALL, options={"temperature": 0.2, "ssl_scale": 0.25})
    g = torch.Generator().manual_seed(0)
    batch = MultimodalBatch([torch.randn(5, 6, generator=g) for _ in specs], [None, None])
    assert isinstance(method, CrossSelf)
    got = method.compute_loss(batch).loss
    z = method.project(batch.inputs, batch.padding)
    assert torch.allclose(got, CrossSelfLoss(0.2, ssl_scale=0.25)(z, z))
    assert not torch.allclose(got, CrossSelfLoss(0.2, ssl_scale=1.0)(z, z))
    with pytest.raises(ConfigError, match="ssl_scale"):
        build_method("cross", specs, _SMALL, options={"ssl_scale": 0.25})


def test_load_encoder_weights_round_trip(tmp_path: Path) -> None:
    specs = _vector_specs()
    comm = build_method("comm", specs, _SMALL)
    path = tmp_path / "comm.ckpt"
    torch.save({"state_dict": comm.state_dict()}, path)
    sup = build_method("supervised", specs, _SMALL, task=TaskInfo("multiclass", 3, 0))
    assert isinstance(sup, Supervised)
    load_encoder_weights(sup.model, path)
    for k, v in comm.model.state_dict().items():  # type: ignore[union-attr]
        assert torch.equal(sup.model.state_dict()[k], v)


# --- errors ---------------------------------------------------------------------------------------------


def _sup(task: str = "multiclass", n_out: int = 3) -> Supervised:
    info = TaskInfo(task, n_out, 0)  # type: ignore[arg-type]
    method = build_method("supervised", _vector_specs(), _SMALL, task=info)
    assert isinstance(method, Supervised)
    return method


def _bad_ckpt(tmp: Path, kind: str) -> Path:
    p = tmp / f"{kind}.ckpt"
    if kind == "garbage":
        p.write_bytes(b"not a checkpoint")
    elif kind == "no_state":
        torch.save({"x": 1}, p)
    elif kind == "no_model":
        torch.save({"state_dict": {"head.weight": torch.zeros(1)}}, p)
    elif kind == "mismatch":
        torch.save({"state_dict": {"model.modality_embed": torch.zeros(3, 3)}}, p)
    return p


_TWO = [torch.randn(3, 2), torch.randn(3, 2)]
_RANK: Any = "ranking"
_FCL = FactorCLLoss(2, 2, 1, 1, critic_hidden=3)
_GOOD = _factor_inputs(2, 3, 2, 1, 1, seed=0)


def _fcl(**change: Any) -> Any:
    return _FCL.compute(**{**_GOOD, **change})


_ERRORS: list[tuple[str, Callable[[Path], Any], str]] = [
    ("supcon_tau", lambda _: SupConLoss(0.0), "temperature must be > 0"),
    ("supcon_views", lambda _: SupConLoss()([], torch.zeros(3, dtype=torch.long)), "at least one view"),
    (
        "supcon_shape",
        lambda _: SupConLoss()(_TWO, torch.zeros(4, dtype=torch.long)),
        "labels must be \\(batch,\\)",
    ),
    ("supcon_float", lambda _: SupConLoss()(_TWO, torch.zeros(3)), "integer class ids"),
    (
        "supcon_batch",
        lambda _: SupConLoss()([torch.randn(1, 2)], torch.zeros(1, dtype=torch.long)),
        "at least 2",
    ),
    ("cmc_tau", lambda _: CMCLoss(-1.0), "temperature must be > 0"),
    ("cmc_nce_tau", lambda _: cross_view_nce(_TWO[0], _TWO[1], 0.0), "temperature must be > 0"),
    ("cmc_views", lambda _: CMCLoss()(_TWO, _TWO[:1]), "same number of modalities"),
    ("cmc_one", lambda _: CMCLoss()(_TWO[:1], _TWO[:1]), "at least 2 modalities"),
    ("cmc_nan", lambda _: CMCLoss()(_TWO, [torch.full((3, 2), math.nan), _TWO[1]]), "NaN or Inf"),
    ("critic_dims", lambda _: PairCritic(0, 2), "critic widths must be ≥ 1"),
    ("nce_square", lambda _: nce_lower_bound(torch.zeros(2, 3)), "square"),
    ("club_square", lambda _: nce_club_upper_bound(torch.zeros(1, 1)), "square"),
    ("fcl_one", lambda _: FactorCLLoss(1, 2, 2, 2), "at least 2 modalities"),
    ("fcl_dims", lambda _: FactorCLLoss(2, 2, 0, 2), "must be ≥ 1"),
    ("fcl_empty", lambda _: _fcl(shared=[]), "one shared embedding per modality"),
    ("fcl_batch", lambda _: _fcl(shared=[torch.randn(1, 2)] * 2), "at least 2 samples"),
    ("fcl_count", lambda _: _fcl(unique=_GOOD["unique"][:1]), "unique embeddings needs 2 tensors"),
    ("fcl_width", lambda _: _fcl(targets=[torch.randn(3, 2)] * 2), "targets must be \\(3, 1\\)"),
    ("fcl_nan", lambda _: _fcl(shared_cond=[torch.full((3, 1), math.inf)] * 2), "NaN or Inf"),
    ("targets_none", lambda _: select_targets(None, "multiclass", 0, "supcon"), "supcon needs labels"),
    ("targets_type", lambda _: select_targets(torch.zeros(2), "ranking", 0, "m"), "task_type must be one of"),
    (
        "targets_col",
        lambda _: select_targets(torch.zeros(2, 2), "multiclass", 2, "m"),
        "label_column must be",
    ),
    (
        "ckpt_missing",
        lambda t: load_encoder_weights(nn.Linear(1, 1), t / "nope.ckpt"),
        "init_checkpoint not found",
    ),
    ("ckpt_garbage", lambda t: load_encoder_weights(nn.Linear(1, 1), _bad_ckpt(t, "garbage")), "cannot read"),
    (
        "ckpt_state",
        lambda t: load_encoder_weights(nn.Linear(1, 1), _bad_ckpt(t, "no_state")),
        "no 'state_dict'",
    ),
    (
        "ckpt_model",
        lambda t: load_encoder_weights(nn.Linear(1, 1), _bad_ckpt(t, "no_model")),
        "no 'model.\\*'",
    ),
    ("ckpt_fit", lambda t: _sup().load_encoder(_bad_ckpt(t, "mismatch")), "does not fit this encoder"),
    ("sup_task", lambda _: Supervised(_sup().model, nn.Identity(), _RANK), "task_type must be one of"),
    (
        "sup_modalities",
        lambda _: _sup().compute_loss(MultimodalBatch([torch.randn(3, 6)], labels=torch.zeros(3))),
        "built for 2 modalities",
    ),
    (
        "sup_classes",
        lambda _: _sup().compute_loss(MultimodalBatch(_vec(3), labels=torch.tensor([0, 1, 3]))),
        "class labels must be in 0..2",
    ),
    (
        "sup_shape",
        lambda _: _sup("regression", 2).compute_loss(MultimodalBatch(_vec(3), labels=torch.zeros(3))),
        "targets have shape",
    ),
    ("fsup_task", lambda _: _fsup(task_type="ranking"), "task_type must be one of"),
    ("fsup_dim", lambda _: _fsup(label_dim=0), "label_dim must be ≥ 1"),
    ("fsup_class", lambda _: _fsup().encode_labels(torch.tensor([0, 3])), "class labels must be in 0..2"),
    (
        "fsup_cols",
        lambda _: _fsup(task_type="multilabel").encode_labels(torch.zeros(2, 2)),
        "expected 3 label columns",
    ),
    (
        "fcl_pairs",
        lambda _: FactorCL(_encoders(1), [nn.Identity()], [nn.Identity()], 4),
        "at least 2 modalities",
    ),
    (
        "fcl_heads",
        lambda _: FactorCL(_encoders(2), [nn.Identity()], [nn.Identity()], 4),
        "one shared and one unique",
    ),
    (
        "fcl_batch_mods",
        lambda _: _fsup().compute_loss(MultimodalBatch(_vec(3)[:1], labels=torch.zeros(3, dtype=torch.long))),
        "built for 2 modalities",
    ),
    ("simclr_enc", lambda _: SimCLR(_encoders(2), nn.Identity()), "encoder of one modality"),
    ("simclr_mod", lambda _: SimCLR(_encoders(1), nn.Identity(), modality=-1), "modality must be ≥ 0"),
    ("simclr_tau", lambda _: SimCLR(_encoders(1), nn.Identity(), temperature=0.0), "temperature must be > 0"),
    (
        "simclr_batch",
        lambda _: SimCLR(_encoders(1), nn.Identity(), modality=2).embed(MultimodalBatch(_vec(3))),
        "uses modality 2",
    ),
    ("cmc_method", lambda _: CMC(_encoders(1), [nn.Identity()]), "CMC needs at least 2 modalities"),
    ("reg_pairs", lambda _: build_method("factorcl", _vector_specs(1), _SMALL), "factorcl needs at least 2"),
    ("reg_cmc", lambda _: build_method("cmc", _vector_specs(1), _SMALL), "cmc needs at least 2"),
    ("reg_labels", lambda _: build_method("supervised", _vector_specs(), _SMALL), "supervised needs labels"),
    (
        "reg_multiclass",
        lambda _: build_method("supcon", _vector_specs(), _SMALL, task=TaskInfo("regression", 1, 0)),
        "supcon needs multiclass labels",
    ),
    (
        "reg_simclr",
        lambda _: build_method("simclr", _vector_specs(), _SMALL, options={"modality": 2}),
        "in 0..1",
    ),
]


def _vec(b: int, n: int = 2) -> list[Tensor]:
    return [torch.randn(b, 6) for _ in range(n)]


def _encoders(n: int) -> UnimodalEncoders:
    return UnimodalEncoders([nn.Linear(6, 4) for _ in range(n)])


def _fsup(**kwargs: Any) -> FactorCLSup:
    args: dict[str, Any] = {"task_type": "multiclass", "label_dim": 3, "critic_hidden": 4, **kwargs}
    return FactorCLSup(_encoders(2), [nn.Identity()] * 2, [nn.Identity()] * 2, 4, **args)


@pytest.mark.parametrize("name,call,match", _ERRORS, ids=[e[0] for e in _ERRORS])
def test_bad_input_errors(tmp_path: Path, name: str, call: Callable[[Path], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(tmp_path)
