"""Evaluation of frozen representations: linear probes (CLIP protocol)."""

from __future__ import annotations

from commlearn.eval.probe import (
    ProbeResult,
    probe_classification,
    probe_multilabel,
    probe_regression,
    probe_tasks,
)

__all__ = [
    "ProbeResult",
    "probe_classification",
    "probe_multilabel",
    "probe_regression",
    "probe_tasks",
]
