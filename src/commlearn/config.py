"""Every configuration type of commlearn, and how a run's configuration is assembled.

A run is ``defaults ← preset ← file ← overrides``: the dataclass defaults below, then a packaged preset
(``src/commlearn/configs/<name>.yaml``, named by ``--config <name>`` or by a file's top-level ``preset:`` key),
then the user's YAML file, then ``section.key=value`` overrides. Unknown keys are errors (a typo must never be
silently ignored). The resolved configuration is written into the run folder and into every checkpoint, so a
checkpoint rebuilds its data and model without the original file.

This module is a leaf: it imports nothing else from commlearn.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

TaskType = Literal["multiclass", "multilabel", "regression"]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)

#: Keys that only set how long a run trains: a run folder resumes when nothing else differs.
TRAINING_LENGTH_KEYS = ("trainer.max_epochs", "trainer.max_steps")
#: Keys that set how a run starts or shows its progress, never what it computes.
PRESENTATION_KEYS = ("trainer.resume", "trainer.progress_bar")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message says which and what is expected."""


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


@dataclass
class ModelConfig:
    """Architecture of the encoders, adapters, fusion and head (YAML section ``model``).

    Attributes:
        embed_dim: token width D and size of the fused embedding Z.
        n_heads, n_layers, pool: fusion transformer settings.
        head_hidden, head_out, head_batch_norm: projection head ``embed_dim → head_hidden… → head_out``.
        image_encoder: ``"cnn"`` (strided CNN) or ``"alexnet"`` (the paper's Trifeature encoder).
        image_channels: CNN stage widths (``"cnn"``).
        image_positions: patch position embeddings: ``"learned"``, ``"sincos"`` or ``"none"``.
        sequence_encoder: ``"gru"``, ``"transformer"`` or ``"linear"`` (no encoder: tokens from the raw steps).
        sequence_dim: width of the sequence encoder.
        vector_encoder: ``"mlp"`` (→ one token) or ``"tokenizer"`` (one token per feature, no encoder).
        vector_dim: width of the vector MLP.
        vocab_size: token-id vocabulary (``"tokens"`` modalities).
        unimodal_pool: how unimodal baselines pool feature maps / sequences: ``"flatten"`` or ``"mean"``.
        pretrained: pre-trained encoders read from local files (never downloaded), keyed by modality name
            (image or token-id modalities); the others keep the default encoder of their kind. Each entry:
            ``library`` (``"hf"``: Hugging Face ``transformers``, or ``"open_clip"``), ``path`` (``hf``: a
            ``save_pretrained`` folder or a model id in the local cache; ``open_clip``: a weights file with
            ``name``, the architecture, e.g. ``"ViT-B-32"``, or a local model folder), ``freeze`` (default
            true: fixed weights, eval mode, no optimiser state), ``features`` (``"tokens"``, default: per-token
            outputs (B, T, D) into a sequence adapter; ``"pooled"``: one vector (B, D)), and optionally
            ``image_size`` (pixels) and ``mean``/``std`` (per channel, pixels in [0, 1]) to override the
            model's own preprocessing. Example: ``{image: {library: hf, path: /models/clip-vit-b32}}``.
            Checked by ``commlearn.nn.pretrained.PretrainedEncoderConfig``.
    """

    embed_dim: int = 128
    n_heads: int = 4
    n_layers: int = 1
    pool: str = "cls"
    head_hidden: list[int] = field(default_factory=lambda: [512])
    head_out: int = 128
    head_batch_norm: bool = True
    image_encoder: str = "cnn"
    image_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    image_positions: str = "learned"
    sequence_encoder: str = "gru"
    sequence_dim: int = 128
    vector_encoder: str = "mlp"
    vector_dim: int = 256
    vocab_size: int = 30522
    unimodal_pool: str = "flatten"
    pretrained: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class DataConfig:
    """YAML section ``data``: everything needed to rebuild the data (with ``trainer.seed``).

    Attributes:
        name: data set name (see ``commlearn.data.registry.DATASETS``).
        root: folder or file of the data (published data sets are read from here; nothing is downloaded).
        batch_size: samples per step per process.
        val_fraction: share of the training set held out for a validation loss (0 = none) when the data set
            publishes no validation split (one that does gives the validation loss itself).
        options: data-set-specific settings: the keyword arguments of its builder, checked against them.
    """

    name: str = "synthetic"
    root: str | None = None
    batch_size: int = 64
    val_fraction: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule (the first keys of YAML section ``method``).

    Attributes:
        lr: learning rate.
        weight_decay: decoupled weight decay (not applied to biases, norms and embeddings).
        warmup_epochs: linear warm-up length, epochs (0 = none).
        scheduler: ``"none"`` or ``"cosine"`` (cosine decay to 0 over the run after warm-up).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 0
    scheduler: str = "none"

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"method.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"method.weight_decay must be ≥ 0, got {self.weight_decay}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"method.warmup_epochs must be ≥ 0, got {self.warmup_epochs}")
        if self.scheduler not in ("none", "cosine"):
            raise ConfigError(f"method.scheduler must be 'none' or 'cosine', got {self.scheduler!r}")


@dataclass
class MethodConfig(OptimConfig):
    """YAML section ``method``: the optimiser keys of :class:`OptimConfig`, then these.

    Attributes:
        name: method name (see ``commlearn.methods.METHODS``).
        augment: use the default label-preserving augmentation of each modality kind.
        augment_options: per modality kind, keyword arguments of its augmentation, e.g.
            ``{"image": {"crop_scale": [0.2, 1.0], "p_blur": 0.0}, "sequence": {"sigma": 0.05}}``.
        options: the method's own options (its constructor's keyword-only arguments, e.g. ``temperature``).
    """

    name: str = "comm"
    augment: bool = True
    augment_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def optim(self) -> OptimConfig:
        """The optimiser part, checked."""
        return OptimConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(OptimConfig)})


@dataclass
class TrainerConfig:
    """YAML section ``trainer`` (Lightning settings).

    Attributes:
        max_epochs, max_steps: training length (``max_steps = -1``: epochs decide).
        accelerator, devices, num_nodes, strategy: hardware (``"auto"`` picks GPUs when present; several GPUs
            or nodes use DDP with no code change).
        precision: ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``.
        seed: seeds every RNG and the data (CPU runs are repeatable).
        output: run folder (config, logs, checkpoints). One folder holds one run.
        log_every_n_steps: logging interval.
        checkpoint_every_n_steps: also checkpoint every N steps (0 = only at epoch ends).
        keep_epoch_checkpoints: keep one checkpoint per epoch (``epoch=…ckpt``) beside ``last.ckpt``; False
            keeps ``last.ckpt`` alone (long runs of large models: 100 epochs would keep 100 files).
        resume: continue the run in ``output`` when its stored config matches (apart from the training
            length); False starts over, deleting that folder's earlier checkpoints and logs.
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
class FinetuneConfig:
    """YAML section ``experiment.finetune``: the recipe of the fine-tuned rows of ``commlearn experiment
    benchmark --finetune`` — the ``supervised`` method, its encoder initialised from the CoMM run's checkpoint,
    trained on the labels; every setting not named here (batch, weight decay, schedule, augmentations) is the
    preset's.

    Attributes:
        max_epochs: fine-tuning epochs.
        lr: AdamW learning rate.
    """

    max_epochs: int = 100
    lr: float = 1e-4


@dataclass
class ExperimentConfig:
    """YAML section ``experiment``: read by ``commlearn experiment`` only (``fit`` ignores it).

    Attributes:
        methods: the methods an experiment runs when ``--methods`` is not given.
        method_options: per method name, its ``method.options`` in this preset (e.g. a smaller critic).
        variants: named variants of a method that an experiment can run beside it, each
            ``{"method": <name>, "options": {...}}`` (e.g. CoMM with only some of its loss terms).
        finetune: the fine-tuning recipe of ``commlearn experiment benchmark --finetune``.
        biased_epochs: epochs of the Trifeature experiment's biased pre-trainings (the synergy runs), capped
            at ``trainer.max_epochs``; None trains them as long as the unbiased ones.
    """

    methods: list[str] = field(default_factory=lambda: ["comm", "cross", "cross_self"])
    method_options: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Any] = field(default_factory=dict)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    biased_epochs: int | None = None


@dataclass
class RunConfig:
    """The whole configuration of a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)


# ------------------------------------------------------------------------------------------ merging
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


def _deep_update(target: dict[str, Any], values: dict[str, Any]) -> None:
    """``target.update(values)``, recursing into mappings present in both."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def merge(target: Any, values: dict[str, Any], prefix: str = "") -> Any:
    """Merge a nested mapping into a dataclass instance in place (strict keys, typed values).

    Free-form mappings (``data.options``, ``method.options``, ...) are merged key by key, recursively.
    """
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
        elif isinstance(current, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {full!r} expects a mapping, got {value!r}")
            _deep_update(current, value)
        else:
            setattr(target, key, _coerce(value, hints[key], full))
    return target


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
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
        try:
            node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value is not valid YAML") from None
    return out


# ------------------------------------------------------------------------------------------ presets
def preset_names() -> list[str]:
    """Names of the presets shipped in the package (``src/commlearn/configs/*.yaml``)."""
    folder = resources.files("commlearn") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping of sections (data, model, method, trainer)")
    return data


def _preset_values(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; packaged presets: {', '.join(preset_names())}")
    text = (resources.files("commlearn") / "configs" / f"{name}.yaml").read_text()
    return _read_yaml(text, f"preset {name}")


def load_config(config: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Defaults ← preset ← file ← overrides.

    Args:
        config: a packaged preset name (``"trifeature-cpu"``) or a YAML file; a file may name the preset it
            extends with a top-level ``preset:`` key.
        overrides: ``section.key=value`` strings.

    Raises:
        ConfigError: unknown preset, missing or invalid file (the message names the line), unknown keys,
            values of the wrong type or out of range (:func:`check_config`).
    """
    cfg = RunConfig()
    if config is not None:
        path = Path(config)
        if path.is_file():
            values = _read_yaml(path.read_text(), f"config file {path}")
            base = values.pop("preset", None)
            if base is not None:
                merge(cfg, _preset_values(str(base)))
            merge(cfg, values)
        elif path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
            raise ConfigError(f"config file not found: {path}")
        else:
            merge(cfg, _preset_values(str(config)))
    merge(cfg, parse_overrides(overrides))
    check_config(cfg)
    return cfg


def check_config(cfg: RunConfig) -> None:
    """Raise a one-line ConfigError for training settings no run can use (checked before anything is built).

    Raises:
        ConfigError: names the key, the value and what is expected.
    """
    t = cfg.trainer
    checks = [
        (t.max_epochs >= 1, "trainer.max_epochs", t.max_epochs, "≥ 1"),
        (
            t.max_steps == -1 or t.max_steps >= 1,
            "trainer.max_steps",
            t.max_steps,
            "≥ 1, or -1 (epochs decide)",
        ),
        (t.log_every_n_steps >= 1, "trainer.log_every_n_steps", t.log_every_n_steps, "≥ 1"),
        (
            t.checkpoint_every_n_steps >= 0,
            "trainer.checkpoint_every_n_steps",
            t.checkpoint_every_n_steps,
            "≥ 0 (0: at epoch ends only)",
        ),
        (t.num_nodes >= 1, "trainer.num_nodes", t.num_nodes, "≥ 1"),
        (
            not isinstance(t.devices, int) or t.devices >= 1 or t.devices == -1,
            "trainer.devices",
            t.devices,
            "'auto', a count ≥ 1, -1 (every device) or a list of device ids",
        ),
        (cfg.data.batch_size >= 1, "data.batch_size", cfg.data.batch_size, "≥ 1"),
        (0.0 <= cfg.data.val_fraction < 1.0, "data.val_fraction", cfg.data.val_fraction, "in [0, 1)"),
        (
            cfg.experiment.biased_epochs is None or cfg.experiment.biased_epochs >= 1,
            "experiment.biased_epochs",
            cfg.experiment.biased_epochs,
            "≥ 1, or null (as long as the unbiased runs)",
        ),
    ]
    for ok, key, value, expected in checks:
        if not ok:
            raise ConfigError(f"{key} must be {expected}, got {value!r}")


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain nested dict (safe for YAML and ``torch.load(weights_only=True)``)."""
    return dataclasses.asdict(cfg)


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Inverse of :func:`config_to_dict`."""
    return merge(RunConfig(), values)


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict) and values:
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): values}


def config_differences(
    old: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = ()
) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two configs as plain dicts (``config_to_dict``).

    Args:
        old, new: the two configs.
        ignore: dotted keys or section prefixes (``"experiment"``) left out of the comparison.

    Returns:
        ``[(dotted key, old value, new value)]`` sorted by key; a key missing on one side has value None.
    """
    skip = tuple(ignore)
    a, b = _flatten(old), _flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == s or key.startswith(f"{s}.") for s in skip):
            continue
        if a.get(key) != b.get(key):
            out.append((key, a.get(key), b.get(key)))
    return out


# ------------------------------------------------------------------------------------------ options
def keyword_options(function: Callable[..., Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    """The keyword arguments of ``function`` that a config may set: ``{name: default}``.

    For a class, its constructor's keyword-only arguments; for a function, every named argument not in
    ``skip``. A required argument has the default ``inspect.Parameter.empty``.
    """
    params = inspect.signature(function).parameters.values()
    if inspect.isclass(function):
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in params if p.kind in kinds and p.name not in skip}


def check_options(
    function: Callable[..., Any], options: dict[str, Any], what: str, skip: Sequence[str] = ()
) -> None:
    """Raise a one-line ConfigError if ``options`` has a key that ``function`` does not take.

    Args:
        function: the class or builder whose :func:`keyword_options` are allowed.
        options: the options from the config.
        what: how the message names the thing, e.g. ``"method 'comm'"``.
        skip: arguments of a function that the config may not set.
    """
    allowed = keyword_options(function, skip)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for {what}; valid options: {sorted(allowed)}")
