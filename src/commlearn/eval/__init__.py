"""Evaluation of frozen representations: feature extraction and linear probes (CLIP protocol)."""

from __future__ import annotations

from commlearn.eval.features import extract_features
from commlearn.eval.probe import (
    ProbeResult,
    probe_classification,
    probe_multilabel,
    probe_regression,
    probe_tasks,
)

__all__ = [
    "ProbeResult",
    "extract_features",
    "probe_classification",
    "probe_multilabel",
    "probe_regression",
    "probe_tasks",
]
