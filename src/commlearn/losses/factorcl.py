"""The FactorCL objective with learned critics, for any n ≥ 2 modalities (all pairs).

Liang, Deng, Ma, Zou, Morency, Salakhutdinov, "Factorized Contrastive Learning: Going Beyond Multi-view
Redundancy", NeurIPS 2023. Equations are quoted by content; the one number given (Eq. 8) is the one the public
repository's issue tracker refers to.

Notation (paper, Sec. 3): ``X_i`` a modality, ``Z_{S_i}`` its shared and ``Z_{U_i}`` its unique
representation, ``Y`` the task (FactorCL-SUP) or ``X_i'`` an augmentation of ``X_i`` (self-supervised
FactorCL). The paper factorises task-relevant information as

* shared ``S = I(X_1; X_2; Y) = I(X_1; X_2) − I(X_1; X_2 | Y)``,
* unique ``U_i = I(X_i; Y | X_{−i}) = I(X_i; Y) − [I(X_1; X_2) − I(X_1; X_2 | Y)]``,

and optimises a lower bound of each: information to *capture* is maximised through an InfoNCE lower
bound ``I_NCE``, information to *remove* is minimised through the NCE-CLUB upper bound ``I_NCE-CLUB``:

* shared:  ``max  I_NCE(Z_{S_1}; Z_{S_2}) − I_NCE-CLUB(Z_{S_1}; Z_{S_2} | Y)``
* unique:  ``max  I_NCE(Z_{U_i}; Y) − I_NCE-CLUB(Z_{U_1}; Z_{U_2}) + I_NCE(Z_{U_1}; Z_{U_2} | Y)``

Self-supervised FactorCL (the objective of the paper's Eq. 8) replaces ``Y`` by the augmented views:
``I(X_i; Y) → I(X_i; X_i')`` and ``I(X_1; X_2 | Y) → I(X_1; X_2 | X_1', X_2')``.

Estimators (a critic ``f(a, b) ∈ R`` scores a pair; ``s_{kl} = f(a_k, b_l)`` over a batch of B pairs):

* ``I_NCE(A; B) = mean_k [ s_kk − log Σ_l exp s_kl ] + log B``  (the InfoNCE bound with the 1/B-normalised
  partition; the critic is trained jointly with the encoders to *maximise* it),
* ``I_NCE-CLUB(A; B) = mean_k s*_kk − mean_{k≠l} s*_kl``  where ``f*`` is a separate critic trained to
  maximise ``I_NCE`` on the same (detached) pairs — the paper's NCE-CLUB estimator: CLUB's
  "positive minus negative" log-ratio with the optimal InfoNCE critic in place of a variational
  ``log q(b | a)``. The negatives are the off-diagonal pairs (samples of the product of marginals); the public
  code also averages in the diagonal, which scales the value by (B−1)/B.
* Under ``torch.distributed`` every critic scores this rank's rows against the columns gathered from every
  rank (``s`` is (B_local, B_global), the positives at the rank's global rows), so each bound's mean over the
  ranks is its single-process value on the global batch (``commlearn.dist``).
* Conditioning on ``C`` (labels or augmented views) is done as in the paper: the critic scores the
  concatenations ``[a; c_a]`` and ``[b; c_b]``. For the self-supervised variant the condition of modality i is
  the *augmented view's* embedding (``[Z_{S_i}(x_i); Z_{S_i}(x_i')]``) — the public repository's IRFL model
  concatenates ``Z(x_i)`` with itself there (issue #4 of pliang279/FactorCL), which conditions on nothing.

Critic optimisation (a single optimiser, no alternating loop): the encoder objective uses the NCE-CLUB value
with the critic's parameters *detached* (gradients reach the representations only), and the critic's own
InfoNCE training loss uses *detached* representations (gradients reach the critic only). Their sum is one
scalar; one optimiser step then updates the encoders for the current critic and the critic for the current
representations at once — the public code's alternating schedule with one critic step per encoder step,
done simultaneously. (Lightning's manual optimisation would also work but would duplicate the base class's
optimiser and schedule handling.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from commlearn import dist
from commlearn.losses.base import LossOutput
from commlearn.losses.info_nce import check_finite


def _linear(layer: nn.Linear, x: Tensor, frozen: bool) -> Tensor:
    if not frozen:
        return layer(x)
    bias = None if layer.bias is None else layer.bias.detach()
    return F.linear(x, layer.weight.detach(), bias)


class PairCritic(nn.Module):
    """The concatenation critic ``f(a, b) = MLP([a; b]) ∈ R`` scored on every pair of two batches.

    MLP: ``Linear(d_a + d_b → hidden)``, ReLU, ``layers`` × (``Linear(hidden → hidden)``, ReLU),
    ``Linear(hidden → 1)`` (the public FactorCL critic). The first layer is applied to ``a`` and ``b``
    separately and summed (``W [a; b] = W_a a + W_b b``), so the B×B pairs never materialise their
    concatenated inputs: cost O((B_a + B_b)·(d_a + d_b)·hidden + B_a·B_b·hidden²·layers).

    Args:
        a_dim: width of the first argument.
        b_dim: width of the second argument.
        hidden: hidden width.
        layers: hidden-to-hidden layers after the first.
    """

    def __init__(self, a_dim: int, b_dim: int, hidden: int = 512, layers: int = 1) -> None:
        super().__init__()
        if min(a_dim, b_dim, hidden) < 1 or layers < 0:
            raise ValueError(
                f"critic widths must be ≥ 1 and layers ≥ 0, got a_dim={a_dim}, b_dim={b_dim}, "
                f"hidden={hidden}, layers={layers}"
            )
        self.a_dim = a_dim
        self.b_dim = b_dim
        self.proj_a = nn.Linear(a_dim, hidden)
        self.proj_b = nn.Linear(b_dim, hidden, bias=False)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, 1)

    def forward(self, a: Tensor, b: Tensor, frozen: bool = False) -> Tensor:
        """Scores ``s`` (B_a, B_b) with ``s[k, l] = f(a_k, b_l)``.

        Args:
            a: (B_a, a_dim).
            b: (B_b, b_dim).
            frozen: use detached parameters (gradients flow to ``a`` and ``b`` only).
        """
        h = _linear(self.proj_a, a, frozen)[:, None, :] + _linear(self.proj_b, b, frozen)[None, :, :]
        h = torch.relu(h)
        for layer in self.hidden:
            h = torch.relu(_linear(layer, h, frozen))  # type: ignore[arg-type]
        return _linear(self.out, h, frozen).squeeze(-1)


def _check_scores(scores: Tensor, offset: int | None) -> int:
    """The offset of the positives of valid ``scores`` (0 for a square matrix); a one-line ValueError else."""
    if offset is None:
        if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
            raise ValueError(f"scores must be a square (B, B) matrix with B ≥ 2, got {tuple(scores.shape)}")
        return 0
    if scores.ndim != 2 or scores.shape[1] < 2 or not 0 <= offset <= scores.shape[1] - scores.shape[0]:
        raise ValueError(
            f"scores must be (B_local, B_global) with B_global ≥ 2 and the positives [k, offset + k] inside, got "
            f"shape {tuple(scores.shape)} and offset {offset}"
        )
    return offset


def nce_lower_bound(scores: Tensor, offset: int | None = None) -> Tensor:
    """InfoNCE bound ``mean_k [s_{k,k} − logsumexp_l s_kl] + log B`` (nats) from critic scores.

    Args:
        scores: (B, B) scores of a batch's pairs; with ``offset``, (B_local, B_global) scores of this rank's
            rows against every rank's columns (``B`` in the bound is the number of columns).
        offset: the column of row 0's positive (row k's is ``offset + k``): ``rank · B_local``; None: a
            square matrix, positives on its diagonal.
    """
    offset = _check_scores(scores, offset)
    return scores.diagonal(offset).mean() - torch.logsumexp(scores, dim=1).mean() + math.log(scores.shape[1])


def nce_club_upper_bound(scores: Tensor, offset: int | None = None) -> Tensor:
    """NCE-CLUB value ``mean_k s_kk − mean_{k≠l} s_kl`` (nats) from the scores of a trained critic.

    Args:
        scores: (B, B), or (B_local, B_global) with ``offset``, as in :func:`nce_lower_bound`.
        offset: the column of row 0's positive; None: a square matrix.
    """
    offset = _check_scores(scores, offset)
    n_rows, n_cols = scores.shape
    pos = scores.diagonal(offset)
    off_mean = (scores.sum() - pos.sum()) / (n_rows * (n_cols - 1))
    return pos.mean() - off_mean


def _retrieval_accuracy(scores: Tensor, offset: int) -> Tensor:
    with torch.no_grad():
        target = torch.arange(scores.shape[0], device=scores.device) + offset
        return (scores.argmax(dim=1) == target).float().mean()


class FactorCLLoss(nn.Module):
    """FactorCL loss with its critics, for ``n ≥ 2`` modalities (every pair ``i < j``; n = 2 is the paper).

    With ``P = n(n−1)/2`` pairs, conditions ``C_i`` and unimodal targets ``T_i`` (labels, or the augmented
    view's unique embedding in the self-supervised variant), the value minimised is ``L_enc + L_critic``:

    ``L_enc = 1/P Σ_{i<j} [ −I_NCE(S_i; S_j) + I_NCE-CLUB(S_i; S_j | C) − I_NCE(U_i; U_j | C)
    + I_NCE-CLUB(U_i; U_j) ] − Σ_i I_NCE(U_i; T_i)``

    ``L_critic = 1/P Σ_{i<j} [ −I_NCE^{f*}(sg[S_i;C_i]; sg[S_j;C_j]) − I_NCE^{f*}(sg U_i; sg U_j) ]``

    (``sg`` = stop-gradient; each NCE-CLUB value uses its critic ``f*`` with detached parameters; see the
    module docstring). For n = 2 this is exactly the public code's sum of six terms: the pair terms of
    ``U_1`` and ``U_2`` are shared and counted once.

    Every term has its own critic (:class:`PairCritic`): ``4P + n`` critics.

    Args:
        n_modalities: n ≥ 2.
        dim: width of the shared and unique embeddings ``S_i``, ``U_i``.
        cond_dim: width of the conditions ``C_i``.
        target_dim: width of the targets ``T_i``.
        critic_hidden: hidden width of every critic.
        critic_layers: hidden-to-hidden layers of every critic.
    """

    def __init__(
        self,
        n_modalities: int,
        dim: int,
        cond_dim: int,
        target_dim: int,
        critic_hidden: int = 512,
        critic_layers: int = 1,
    ) -> None:
        super().__init__()
        if n_modalities < 2:
            raise ValueError(
                f"FactorCL needs at least 2 modalities (it factorises pairs), got {n_modalities}"
            )
        if min(dim, cond_dim, target_dim) < 1:
            raise ValueError(f"dim, cond_dim and target_dim must be ≥ 1, got {dim}, {cond_dim}, {target_dim}")
        self.n_modalities = n_modalities
        self.dim = dim
        self.cond_dim = cond_dim
        self.target_dim = target_dim
        self.pairs = list(combinations(range(n_modalities), 2))
        d, c, h, k = dim, cond_dim, critic_hidden, critic_layers
        self.shared_nce = nn.ModuleList(PairCritic(d, d, h, k) for _ in self.pairs)
        self.shared_club_cond = nn.ModuleList(PairCritic(d + c, d + c, h, k) for _ in self.pairs)
        self.unique_nce_cond = nn.ModuleList(PairCritic(d + c, d + c, h, k) for _ in self.pairs)
        self.unique_club = nn.ModuleList(PairCritic(d, d, h, k) for _ in self.pairs)
        self.unique_target = nn.ModuleList(PairCritic(d, target_dim, h, k) for _ in range(n_modalities))

    def forward(
        self,
        shared: Sequence[Tensor],
        unique: Sequence[Tensor],
        shared_cond: Sequence[Tensor],
        unique_cond: Sequence[Tensor],
        targets: Sequence[Tensor],
    ) -> Tensor:
        """Scalar loss ``L_enc + L_critic``; see :meth:`compute` for the inputs."""
        return self.compute(shared, unique, shared_cond, unique_cond, targets).loss

    def _check(self, name: str, xs: Sequence[Tensor], width: int, batch: int) -> None:
        if len(xs) != self.n_modalities:
            raise ValueError(f"{name} needs {self.n_modalities} tensors (one per modality), got {len(xs)}")
        for x in xs:
            if x.ndim != 2 or x.shape[0] != batch or x.shape[1] != width:
                raise ValueError(f"{name} must be ({batch}, {width}) per modality, got {tuple(x.shape)}")
            check_finite(name, x)

    def compute(
        self,
        shared: Sequence[Tensor],
        unique: Sequence[Tensor],
        shared_cond: Sequence[Tensor],
        unique_cond: Sequence[Tensor],
        targets: Sequence[Tensor],
    ) -> LossOutput:
        """The loss with every bound's value (nats) and the critics' top-1 retrieval accuracies.

        Args:
            shared: n embeddings ``S_i`` (B, dim).
            unique: n embeddings ``U_i`` (B, dim).
            shared_cond: n conditions (B, cond_dim) for ``I_NCE-CLUB(S_i; S_j | C)``.
            unique_cond: n conditions (B, cond_dim) for ``I_NCE(U_i; U_j | C)``.
            targets: n targets (B, target_dim) for ``I_NCE(U_i; T_i)``.

        Returns:
            :class:`LossOutput` with terms ``nce_shared_mi_mj``, ``club_shared_cond_mi_mj``,
            ``nce_unique_cond_mi_mj``, ``club_unique_mi_mj``, ``nce_unique_target_mi`` (MI estimates) and
            ``critic_loss``; accuracies ``shared_mi_mj`` and ``unique_target_mi``.
        """
        if len(shared) == 0:
            raise ValueError("FactorCL needs one shared embedding per modality, got none")
        batch = int(shared[0].shape[0]) if shared[0].ndim == 2 else -1
        if batch < 2:
            raise ValueError(
                f"a contrastive loss needs a batch of at least 2 samples, got shape {tuple(shared[0].shape)}"
            )
        self._check("shared embeddings", shared, self.dim, batch)
        self._check("unique embeddings", unique, self.dim, batch)
        self._check("shared conditions", shared_cond, self.cond_dim, batch)
        self._check("unique conditions", unique_cond, self.cond_dim, batch)
        self._check("targets", targets, self.target_dim, batch)
        ref = shared[0]
        enc = torch.zeros((), device=ref.device, dtype=ref.dtype)
        critic = torch.zeros((), device=ref.device, dtype=ref.dtype)
        terms: dict[str, Tensor] = {}
        accs: dict[str, Tensor] = {}
        n_pairs = len(self.pairs)
        cols = dist.gather_with_grad  # each rank's rows against every rank's columns (module docstring)
        off = dist.rank() * batch
        for p, (i, j) in enumerate(self.pairs):
            tag = f"m{i}_m{j}"
            s_scores = self.shared_nce[p](shared[i], cols(shared[j]))
            nce_s = nce_lower_bound(s_scores, off)
            sc_i = torch.cat([shared[i], shared_cond[i]], dim=1)
            sc_j = cols(torch.cat([shared[j], shared_cond[j]], dim=1))
            club_s = nce_club_upper_bound(self.shared_club_cond[p](sc_i, sc_j, frozen=True), off)
            uc_i = torch.cat([unique[i], unique_cond[i]], dim=1)
            uc_j = cols(torch.cat([unique[j], unique_cond[j]], dim=1))
            nce_uc = nce_lower_bound(self.unique_nce_cond[p](uc_i, uc_j), off)
            u_j = cols(unique[j])
            club_u = nce_club_upper_bound(self.unique_club[p](unique[i], u_j, frozen=True), off)
            enc = enc + (-nce_s + club_s - nce_uc + club_u) / n_pairs
            fit_s = nce_lower_bound(self.shared_club_cond[p](sc_i.detach(), sc_j.detach()), off)
            fit_u = nce_lower_bound(self.unique_club[p](unique[i].detach(), u_j.detach()), off)
            critic = critic - (fit_s + fit_u) / n_pairs
            terms[f"nce_shared_{tag}"] = nce_s.detach()
            terms[f"club_shared_cond_{tag}"] = club_s.detach()
            terms[f"nce_unique_cond_{tag}"] = nce_uc.detach()
            terms[f"club_unique_{tag}"] = club_u.detach()
            accs[f"shared_{tag}"] = _retrieval_accuracy(s_scores, off)
        for i in range(self.n_modalities):
            t_scores = self.unique_target[i](unique[i], cols(targets[i]))
            nce_t = nce_lower_bound(t_scores, off)
            enc = enc - nce_t
            terms[f"nce_unique_target_m{i}"] = nce_t.detach()
            accs[f"unique_target_m{i}"] = _retrieval_accuracy(t_scores, off)
        terms["critic_loss"] = critic.detach()
        return LossOutput(loss=enc + critic, terms=terms, accuracies=accs)
