"""The method registry: a name → a builder that makes the method from the data's modality specs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from commlearn.data.base import ModalitySpec, TaskType
from commlearn.methods.base import BaseMethod
from commlearn.methods.comm import CoMM
from commlearn.methods.cross import Cross, CrossSelf, UnimodalEncoders
from commlearn.nn.factory import ModelConfig, build_encoders, build_fusion, build_head, feature_dim


@dataclass(frozen=True)
class Optim:
    """Optimiser settings shared by every method (see :class:`~commlearn.methods.base.BaseMethod`)."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 0
    scheduler: str = "none"


@dataclass(frozen=True)
class TaskInfo:
    """What the supervised methods need to know about the labels.

    Attributes:
        task_type: multiclass, multilabel or regression.
        n_outputs: classes (multiclass), labels (multilabel) or targets (regression).
        label_column: which label column a single-task method trains on.
    """

    task_type: TaskType = "multiclass"
    n_outputs: int = 2
    label_column: int = 0


Builder = Callable[..., BaseMethod]


def _unimodal(specs: Sequence[ModalitySpec], model: ModelConfig) -> tuple[UnimodalEncoders, list[nn.Module]]:
    encoders = build_encoders(specs, model)
    dims = [feature_dim(e, s, model.unimodal_pool) for e, s in zip(encoders, specs, strict=True)]
    return UnimodalEncoders(encoders, model.unimodal_pool), [build_head(d, model) for d in dims]


def build_comm(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    temperature: float = 0.1,
    loss_weights: list[float] | None = None,
) -> CoMM:
    fusion = build_fusion(specs, model)
    return CoMM(fusion, build_head(model.embed_dim, model), augment, temperature, loss_weights, **vars(optim))


def build_cross(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    temperature: float = 0.1,
) -> Cross:
    if len(specs) < 2:
        raise ValueError(f"cross needs at least 2 modalities, the data has {len(specs)}")
    encoders, heads = _unimodal(specs, model)
    return Cross(encoders, heads, augment, temperature, **vars(optim))


def build_cross_self(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    temperature: float = 0.1,
    ssl_scale: float = 1.0,
) -> CrossSelf:
    if len(specs) < 2:
        raise ValueError(f"cross_self needs at least 2 modalities, the data has {len(specs)}")
    encoders, heads = _unimodal(specs, model)
    return CrossSelf(encoders, heads, augment, temperature, ssl_scale, **vars(optim))


METHODS: dict[str, Builder] = {
    "comm": build_comm,
    "cross": build_cross,
    "cross_self": build_cross_self,
}

_FIXED = ("specs", "model", "augment", "optim", "task")


def method_options(name: str) -> list[str]:
    """Names of the method-specific options (YAML ``method.options``) of method ``name``."""
    return [p for p in inspect.signature(_builder(name)).parameters if p not in _FIXED]


def _builder(name: str) -> Builder:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]


def build_method(
    name: str,
    specs: Sequence[ModalitySpec],
    model: ModelConfig | None = None,
    augment: nn.Module | None = None,
    optim: Optim | None = None,
    task: TaskInfo | None = None,
    options: dict[str, Any] | None = None,
) -> BaseMethod:
    """Build method ``name`` for data with modalities ``specs``.

    Raises:
        ValueError: unknown method or an option the method does not take.
    """
    builder = _builder(name)
    options = dict(options or {})
    allowed = method_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for method {name!r}; valid options: {allowed}")
    return builder(list(specs), model or ModelConfig(), augment, optim or Optim(), task, **options)
