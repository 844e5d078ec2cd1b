"""Evaluation of frozen representations: feature extraction, linear probes (CLIP protocol), the interaction
report (probes of every modality subset, and a partial information decomposition in bits)."""

from __future__ import annotations

from commlearn.eval.features import extract_features
from commlearn.eval.interactions import interaction_report
from commlearn.eval.pid import PIDResult, pid_from_distribution, pid_from_embeddings, pid_from_samples
from commlearn.eval.probe import (
    ProbeResult,
    probe_classification,
    probe_multilabel,
    probe_regression,
    probe_tasks,
)

__all__ = [
    "PIDResult",
    "ProbeResult",
    "extract_features",
    "interaction_report",
    "pid_from_distribution",
    "pid_from_embeddings",
    "pid_from_samples",
    "probe_classification",
    "probe_multilabel",
    "probe_regression",
    "probe_tasks",
]
