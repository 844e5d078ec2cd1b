"""The method registry: a name → the method class (each class states its options once, in its constructor)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from commlearn.config import ConfigError, ModelConfig, OptimConfig, TaskInfo, check_options, keyword_options
from commlearn.data.base import ModalitySpec
from commlearn.methods.base import BaseMethod, BuildContext
from commlearn.methods.comm import CoMM
from commlearn.methods.factorcl import FactorCL, FactorCLSup
from commlearn.methods.infmasking import InfMasking
from commlearn.methods.supervised import Supervised
from commlearn.methods.unimodal import CMC, Cross, CrossSelf, SimCLR, SupCon

METHODS: dict[str, type[BaseMethod]] = {
    "comm": CoMM,
    "infmasking": InfMasking,
    "cross": Cross,
    "cross_self": CrossSelf,
    "factorcl": FactorCL,
    "factorcl_sup": FactorCLSup,
    "simclr": SimCLR,
    "supcon": SupCon,
    "cmc": CMC,
    "supervised": Supervised,
}


def method_class(name: str) -> type[BaseMethod]:
    """The class registered as ``name``.

    Raises:
        ConfigError: unknown name.
    """
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]


def method_options(name: str) -> dict[str, Any]:
    """The options (YAML ``method.options``) of method ``name`` with their defaults."""
    return keyword_options(method_class(name))


def build_method(
    name: str,
    specs: Sequence[ModalitySpec],
    model: ModelConfig | None = None,
    augment: nn.Module | None = None,
    optim: OptimConfig | None = None,
    task: TaskInfo | None = None,
    options: dict[str, Any] | None = None,
) -> BaseMethod:
    """Build method ``name`` for data with modalities ``specs``.

    Raises:
        ConfigError: unknown method or option, too few modalities, missing or unsuitable labels.
    """
    cls = method_class(name)
    options = dict(options or {})
    check_options(cls, options, f"method {name!r}")
    if len(specs) < cls.min_modalities:
        raise ConfigError(f"{name} needs at least {cls.min_modalities} modalities, the data has {len(specs)}")
    if cls.needs_labels and task is None:
        raise ConfigError(f"{name} needs labels but the data set has none (give the data set a labels entry)")
    if cls.multiclass_only and task is not None and task.task_type != "multiclass":
        raise ConfigError(f"{name} needs multiclass labels, the data set's task is {task.task_type}")
    ctx = BuildContext(list(specs), model or ModelConfig(), augment, optim or OptimConfig(), task)
    return cls.from_config(ctx, **options)
