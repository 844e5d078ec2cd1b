"""The interaction report: how much of each task a trained model finds in each modality, in each subset of the
modalities and only in all of them together (DESIGN §12).

Two complementary estimates per task:

1. **Probes** of the embedding of every non-empty subset of the modalities (the others treated as missing,
   :meth:`~commlearn.methods.BaseMethod.embed`), and the gain of the joint embedding over the best proper
   subset: an empirical synergy indicator in probe-metric points, not an information quantity.
2. **A partial information decomposition** in bits (:mod:`commlearn.eval.pid`) of the task label against the
   single-modality embeddings, each discretised by k-means: redundancy R, uniqueness U_i (for n > 2, modality
   i against the joint of the others) and synergy S. It is an estimate of the information the *learned
   embeddings* carry, biased by the number of clusters and samples; classification tasks only.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import torch

from commlearn.data.base import MultimodalDataset
from commlearn.eval.features import extract_features
from commlearn.eval.probe import probe_tasks
from commlearn.methods.base import BaseMethod

#: The most modalities whose 2^n − 1 subsets are all probed.
MAX_SUBSET_MODALITIES = 5


def modality_subsets(n: int) -> list[tuple[int, ...]]:
    """Every non-empty subset of ``range(n)``, smallest first: ``[(0,), (1,), (0, 1)]`` for n = 2."""
    if not 1 <= n <= MAX_SUBSET_MODALITIES:
        raise ValueError(f"the interaction report takes 1..{MAX_SUBSET_MODALITIES} modalities, got {n}")
    return [s for k in range(1, n + 1) for s in itertools.combinations(range(n), k)]


def _key(subset: tuple[int, ...], names: list[str]) -> str:
    return "+".join(names[i] for i in subset)


def _as_columns(labels: torch.Tensor) -> torch.Tensor:
    return labels if labels.ndim == 2 else labels[:, None]


def interaction_report(
    method: BaseMethod,
    probe_train: MultimodalDataset,
    test: MultimodalDataset,
    seed: int = 0,
    n_clusters: int = 20,
) -> dict[str, Any]:
    """Probe every modality subset and decompose each classification task's information.

    Args:
        method: a trained method whose embedding covers every modality of the data.
        probe_train: samples the probes are fitted on (and the PID is estimated on).
        test: samples the probes are scored on.
        seed: seed of the probes' validation split and of k-means.
        n_clusters: k-means clusters per single-modality embedding for the PID.

    Returns:
        A JSON-ready dict: ``modalities`` (names), ``metric`` per task, and per task ``probes`` (subset key
        such as ``"image1+image2"`` → score), ``joint_gain`` (joint score − best proper subset's score, None
        for one modality) and ``pid`` (:class:`~commlearn.eval.pid.PIDResult` as a dict, or None).

    Raises:
        ValueError: no labels, or more modalities than :data:`MAX_SUBSET_MODALITIES`.
    """
    from commlearn.eval.pid import pid_from_embeddings, pid_one_vs_rest_from_embeddings

    names = [s.name for s in probe_train.modality_specs]
    subsets = modality_subsets(len(names))
    method.check_modalities(len(names), list(range(len(names))))
    features: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
    labels: tuple[torch.Tensor, torch.Tensor] | None = None
    for subset in subsets:
        train_x, train_y = extract_features(method, probe_train, modalities=subset)
        test_x, test_y = extract_features(method, test, modalities=subset)
        if train_y is None or test_y is None:
            raise ValueError("the interaction report needs labels: add a labels entry to the data set")
        features[subset] = (train_x, test_x)
        labels = (_as_columns(train_y), _as_columns(test_y))
    assert labels is not None
    task_names, task_type = probe_train.task_names, probe_train.task_type
    scores = {
        subset: probe_tasks(train_x, labels[0], test_x, labels[1], task_names, task_type, seed=seed)
        for subset, (train_x, test_x) in features.items()
    }
    tasks: dict[str, Any] = {}
    for task in scores[subsets[-1]]:
        probes = {_key(s, names): round(float(scores[s][task].score), 2) for s in subsets}
        joint = scores[subsets[-1]][task].score
        gain = (
            None
            if len(subsets) == 1
            else round(float(joint - max(scores[s][task].score for s in subsets[:-1])), 2)
        )
        pid: dict[str, Any] | None = None
        if task_type == "multiclass" and len(names) >= 2:
            y = labels[0][:, task_names.index(task)].numpy()
            singles = [features[(i,)][0].numpy() for i in range(len(names))]
            if len(names) == 2:
                pid = pid_from_embeddings(singles[0], singles[1], y, n_clusters, seed).to_dict()
            else:
                parts = pid_one_vs_rest_from_embeddings(singles, y, n_clusters, seed)
                pid = {names[i]: r.to_dict() for i, r in enumerate(parts)}
        tasks[task] = {"probes": probes, "joint_gain": gain, "pid": pid}
    metrics = {t: scores[subsets[-1]][t].metric for t in tasks}
    return {"modalities": names, "metric": metrics, "n_clusters": n_clusters, "tasks": tasks}


def write_report(report: dict[str, Any], path: Path) -> None:
    """``report`` as JSON at ``path`` and its plot beside it (``path`` with suffix ``.png``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    plot_report(report, path.with_suffix(".png"))


def plot_report(report: dict[str, Any], path: Path) -> None:
    """One panel per task: the probe score of every modality subset (the joint one last)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks) + 1, 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        probes = report["tasks"][task]["probes"]
        keys = list(probes)
        bars = ax.bar(
            range(len(keys)), [probes[k] for k in keys], color=plt.get_cmap("tab10")(range(len(keys)))
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(keys)), keys, rotation=30, fontsize=7, ha="right")
        gain = report["tasks"][task]["joint_gain"]
        ax.set_title(f"{task}" + ("" if gain is None else f" (joint gain {gain:+.1f})"), fontsize=9)
        ax.set_ylabel(report["metric"][task], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
