"""The method registry: a name → a builder that makes the method from the data's modality specs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from commlearn.data.base import ModalitySpec, TaskType
from commlearn.methods.base import BaseMethod
from commlearn.methods.cmc import CMC
from commlearn.methods.comm import CoMM
from commlearn.methods.cross import Cross, CrossSelf, UnimodalEncoders
from commlearn.methods.factorcl import FactorCL, FactorCLSup
from commlearn.methods.simclr import SimCLR
from commlearn.methods.supcon import SupCon
from commlearn.methods.supervised import Supervised
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
    _need_pairs("cross", specs)
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
    _need_pairs("cross_self", specs)
    encoders, heads = _unimodal(specs, model)
    return CrossSelf(encoders, heads, augment, temperature, ssl_scale, **vars(optim))


def _need_pairs(name: str, specs: Sequence[ModalitySpec]) -> None:
    if len(specs) < 2:
        raise ValueError(f"{name} needs at least 2 modalities, the data has {len(specs)}")


def _need_labels(name: str, task: TaskInfo | None, multiclass_only: bool = False) -> TaskInfo:
    if task is None:
        raise ValueError(f"{name} needs labels but the data set has none (give the data set a labels entry)")
    if multiclass_only and task.task_type != "multiclass":
        raise ValueError(f"{name} needs multiclass labels, the data set's task is {task.task_type}")
    return task


def _factor_heads(
    specs: Sequence[ModalitySpec], model: ModelConfig
) -> tuple[UnimodalEncoders, list[nn.Module], list[nn.Module]]:
    encoders, shared = _unimodal(specs, model)
    dims = [feature_dim(e, s, model.unimodal_pool) for e, s in zip(encoders.encoders, specs, strict=True)]
    return encoders, shared, [build_head(d, model) for d in dims]


def build_factorcl(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    critic_hidden: int = 512,
    critic_layers: int = 1,
) -> FactorCL:
    _need_pairs("factorcl", specs)
    encoders, shared, unique = _factor_heads(specs, model)
    return FactorCL(
        encoders, shared, unique, model.head_out, augment, critic_hidden, critic_layers, **vars(optim)
    )


def build_factorcl_sup(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    critic_hidden: int = 512,
    critic_layers: int = 1,
) -> FactorCLSup:
    _need_pairs("factorcl_sup", specs)
    info = _need_labels("factorcl_sup", task)
    encoders, shared, unique = _factor_heads(specs, model)
    return FactorCLSup(
        encoders,
        shared,
        unique,
        model.head_out,
        info.task_type,
        info.n_outputs,
        info.label_column,
        augment,
        critic_hidden,
        critic_layers,
        **vars(optim),
    )


def build_simclr(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    temperature: float = 0.1,
    modality: int = 0,
) -> SimCLR:
    if not 0 <= modality < len(specs):
        raise ValueError(f"simclr option modality must be in 0..{len(specs) - 1}, got {modality}")
    encoders, heads = _unimodal([specs[modality]], model)
    return SimCLR(encoders, heads[0], modality, augment, temperature, **vars(optim))


def build_supcon(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    temperature: float = 0.1,
) -> SupCon:
    info = _need_labels("supcon", task, multiclass_only=True)
    encoders, heads = _unimodal(specs, model)
    return SupCon(encoders, heads, info.label_column, augment, temperature, **vars(optim))


def build_cmc(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    temperature: float = 0.1,
) -> CMC:
    _need_pairs("cmc", specs)
    encoders, heads = _unimodal(specs, model)
    return CMC(encoders, heads, augment, temperature, **vars(optim))


def build_supervised(
    specs: Sequence[ModalitySpec],
    model: ModelConfig,
    augment: nn.Module | None,
    optim: Optim,
    task: TaskInfo | None = None,
    init_checkpoint: str | None = None,
) -> Supervised:
    info = _need_labels("supervised", task)
    fusion = build_fusion(specs, model)
    head = nn.Linear(model.embed_dim, info.n_outputs)
    return Supervised(
        fusion, head, info.task_type, info.label_column, augment, init_checkpoint, **vars(optim)
    )


METHODS: dict[str, Builder] = {
    "comm": build_comm,
    "cross": build_cross,
    "cross_self": build_cross_self,
    "factorcl": build_factorcl,
    "factorcl_sup": build_factorcl_sup,
    "simclr": build_simclr,
    "supcon": build_supcon,
    "cmc": build_cmc,
    "supervised": build_supervised,
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
