"""Run configuration: typed dataclasses merged ``defaults ← YAML file ← command-line overrides``.

Unknown keys are errors (a typo must never be silently ignored). The resolved configuration is written into
the run folder and into every checkpoint, so a checkpoint rebuilds its model without the original file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from commlearn.nn.factory import ModelConfig


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message says which and what is expected."""


@dataclass
class DataConfig:
    """YAML section ``data``.

    Attributes:
        name: data set name (see ``commlearn.data.registry.DATASETS``).
        root: folder or file of the data (published data sets are read from here; nothing is downloaded).
        batch_size: samples per step per process.
        val_fraction: share of the training set held out for validation loss (0 = none).
        options: data-set-specific settings (checked by the data set builder).
    """

    name: str = "synthetic"
    root: str | None = None
    batch_size: int = 64
    val_fraction: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodConfig:
    """YAML section ``method``.

    Attributes:
        name: method name (see ``commlearn.methods.METHODS``).
        lr, weight_decay: AdamW settings.
        warmup_epochs, scheduler: learning-rate schedule (``"none"`` or ``"cosine"``).
        augment: use the default label-preserving augmentation of each modality kind.
        augment_options: per modality kind, keyword arguments of its augmentation, e.g.
            ``{"image": {"crop_scale": [0.2, 1.0], "p_blur": 0.0}, "sequence": {"sigma": 0.05}}``.
        options: method-specific settings (e.g. ``temperature``; checked by the method builder).
    """

    name: str = "comm"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 0
    scheduler: str = "none"
    augment: bool = True
    augment_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainerConfig:
    """YAML section ``trainer`` (Lightning settings).

    Attributes:
        max_epochs, max_steps: training length (``max_steps = -1``: epochs decide).
        accelerator, devices, num_nodes, strategy: hardware (``"auto"`` picks GPUs when present; several GPUs
            or nodes use DDP with no code change).
        precision: ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``.
        seed: seeds every RNG (CPU runs are repeatable).
        output: run folder (config, logs, checkpoints).
        log_every_n_steps: logging interval.
        checkpoint_every_n_steps: also checkpoint every N steps (0 = only at epoch ends).
        keep_epoch_checkpoints: keep one checkpoint per epoch (``epoch=…ckpt``) beside ``last.ckpt``; False
            keeps ``last.ckpt`` alone (long runs of large models: 100 epochs would keep 100 files).
        resume: continue from ``output/checkpoints/last.ckpt`` when it exists.
        progress_bar: show a progress bar.
    """

    max_epochs: int = 10
    max_steps: int = -1
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    seed: int = 0
    output: str = "runs/fit"
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 0
    keep_epoch_checkpoints: bool = True
    resume: bool = True
    progress_bar: bool = True


@dataclass
class RunConfig:
    """The whole configuration of a ``commlearn fit`` run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise a one-line ConfigError."""
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} expects a list, got {value!r}")
        (item,) = get_args(hint) or (Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} expects a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"config key {key!r} expects true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
        ):
            raise ConfigError(f"config key {key!r} expects an integer, got {value!r}")
        return int(value)
    if hint is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r} expects a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key {key!r} expects a string, got {value!r}")
        return str(value)
    return value


def merge(target: Any, values: dict[str, Any], prefix: str = "") -> Any:
    """Merge a nested mapping into a dataclass instance in place (strict keys, typed values)."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"config section {prefix.rstrip('.') or 'root'!r} must be a mapping, got {values!r}"
        )
    hints = get_type_hints(type(target))
    names = [f.name for f in dataclasses.fields(target)]
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key {full!r}; valid keys here: {', '.join(names)}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            merge(current, value, f"{full}.")
        elif key in ("options", "augment_options") and isinstance(current, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {full!r} expects a mapping, got {value!r}")
            current.update(value)
        else:
            setattr(target, key, _coerce(value, hints[key], full))
    return target


def parse_overrides(overrides: typing.Sequence[str]) -> dict[str, Any]:
    """``["method.lr=3e-4", "data.options.size=32"]`` → a nested mapping (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        if not all(keys):
            raise ConfigError(f"override {item!r} has an empty key")
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override")
        node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return out


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> RunConfig:
    """Defaults ← YAML file ← overrides.

    Raises:
        ConfigError: missing/unreadable file, unknown keys, values of the wrong type.
    """
    cfg = RunConfig()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
        merge(cfg, data)
    merge(cfg, parse_overrides(overrides))
    return cfg


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain nested dict (safe for YAML and ``torch.load(weights_only=True)``)."""
    return dataclasses.asdict(cfg)


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Inverse of :func:`config_to_dict`."""
    return merge(RunConfig(), values)
