"""Pre-trained image and text encoders read from local files: Hugging Face ``transformers`` and ``open_clip``.

A modality named in ``model.pretrained`` (see :class:`~commlearn.config.ModelConfig`) gets one of these encoders
instead of the small default one; its token outputs (``last_hidden_state`` (B, T, D), a vision transformer's
patch tokens) feed the latent adapter like any other sequence, so CoMM fuses them (the paper's CoMM with CLIP
features on MM-IMDb). Nothing is downloaded: Hugging Face models load with ``local_files_only=True`` from a
folder or the local cache, open_clip models from a weights file or a local folder.

The libraries are optional (``pip install 'commlearn[hf]'`` / ``'commlearn[clip]'``) and imported only here,
only when a config names them.

A frozen encoder (the default) has ``requires_grad=False`` parameters (so ``configure_optimizers`` gives them
no optimiser state), runs without autograd, and stays in eval mode when the method trains (no dropout, no
statistics updates). Its weights are still part of the method's ``state_dict`` and so of every checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from commlearn.config import ConfigError
from commlearn.data.base import ModalitySpec
from commlearn.nn.encoders import ImageNormalize

Library = Literal["hf", "open_clip"]
FeatureKind = Literal["tokens", "pooled"]
LIBRARIES: tuple[str, ...] = ("hf", "open_clip")
FEATURES: tuple[str, ...] = ("tokens", "pooled")
_EXTRA = {"hf": "hf", "open_clip": "clip"}
_MODULE = {"hf": "transformers", "open_clip": "open_clip"}


@dataclass(frozen=True)
class PretrainedEncoderConfig:
    """One entry of ``model.pretrained`` (keyed by modality name), checked.

    Attributes:
        library: ``"hf"`` (Hugging Face ``transformers``) or ``"open_clip"``.
        path: ``hf``: a folder written by ``save_pretrained`` (``config.json`` + weights), or a model id already
            in the local Hugging Face cache; ``open_clip``: a weights file (with ``name``) or a local model folder
            (``open_clip_config.json`` + weights, open_clip ≥ 3.0).
        name: ``open_clip`` architecture (``"ViT-B-32"``), needed with a weights file; unused by ``hf``.
        freeze: keep the pre-trained weights fixed (True) or train them with the rest of the model (the
            parameters the chosen outputs do not depend on stay fixed: :meth:`PretrainedEncoder.freeze_unreachable`).
        features: ``"tokens"``: per-token outputs (B, T, D) (patch tokens of a vision transformer, one output
            per input token of a language model); ``"pooled"``: the model's pooled vector (B, D).
        image_size: side in pixels the images are resized to (default: the model's own input size).
        mean, std: per-channel normalisation of [0, 1] pixels (default: the model's own, from its
            ``preprocessor_config.json`` or open_clip's preprocessing config).
    """

    library: Library
    path: str
    name: str | None = None
    freeze: bool = True
    features: FeatureKind = "tokens"
    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def from_entry(cls, modality: str, entry: Any) -> PretrainedEncoderConfig:
        """Check one YAML entry ``model.pretrained.<modality>``.

        Raises:
            ConfigError: one line naming the key, the value and what is expected.
        """
        where = f"model.pretrained.{modality}"
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{where} must be a mapping like {{library: hf, path: <folder>}}, got {entry!r}"
            )
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(entry) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(allowed)}")
        for key in ("library", "path"):
            if key not in entry or entry[key] in (None, ""):
                raise ConfigError(f"{where}.{key} is required (e.g. {{library: hf, path: <model folder>}})")
        library = entry["library"]
        if library not in LIBRARIES:
            raise ConfigError(f"{where}.library must be one of {list(LIBRARIES)}, got {library!r}")
        features = entry.get("features", "tokens")
        if features not in FEATURES:
            raise ConfigError(f"{where}.features must be one of {list(FEATURES)}, got {features!r}")
        freeze = entry.get("freeze", True)
        if not isinstance(freeze, bool):
            raise ConfigError(f"{where}.freeze expects true/false, got {freeze!r}")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{where}.name expects a string, got {name!r}")
        size = entry.get("image_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(f"{where}.image_size expects a positive integer (pixels), got {size!r}")
        mean, std = (_floats(entry.get(k), f"{where}.{k}") for k in ("mean", "std"))
        if (mean is None) != (std is None) or (
            mean is not None and std is not None and len(mean) != len(std)
        ):
            raise ConfigError(
                f"{where}: give mean and std together, one value per channel, got {mean}, {std}"
            )
        if std is not None and min(std) <= 0:
            raise ConfigError(f"{where}.std must be > 0, got {list(std)}")
        return cls(library, str(entry["path"]), name, freeze, features, size, mean, std)


def _floats(value: Any, key: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return tuple(float(v) for v in value)
    raise ConfigError(f"{key} expects a number or a list of numbers (one per channel), got {value!r}")


def check_pretrained(entries: Mapping[str, Any], specs: Sequence[ModalitySpec]) -> None:
    """Every ``model.pretrained`` entry names an image or token modality of the data and is well formed.

    Raises:
        ConfigError: an entry for a modality the data does not have, of a kind without pre-trained encoders,
            or a malformed entry.
    """
    by_name = {s.name: s for s in specs}
    for modality, entry in entries.items():
        if modality not in by_name:
            raise ConfigError(
                f"model.pretrained has an entry for modality {modality!r}, but the data's modalities are "
                f"{list(by_name)}"
            )
        kind = by_name[modality].kind
        if kind not in ("image", "tokens"):
            raise ConfigError(
                f"model.pretrained.{modality}: pre-trained encoders take image or token-id modalities, "
                f"{modality!r} is a {kind!r} modality"
            )
        PretrainedEncoderConfig.from_entry(modality, entry)


# ------------------------------------------------------------------------------------------ wrappers
class PretrainedEncoder(nn.Module):
    """Base of the wrappers: a pre-trained ``backbone``, frozen or trained, with ``out_dim``.

    Args:
        backbone: the library's model (or the tower of it that this modality uses).
        out_dim: width of the features the wrapper returns.
        freeze: fix the backbone's weights (``requires_grad=False``, eval mode, no autograd).
    """

    def __init__(self, backbone: nn.Module, out_dim: int, freeze: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.out_dim = out_dim
        self.frozen = freeze
        self.backbone.float()  # train and fuse in float32 (a half-precision file would break the adapters)
        if freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> PretrainedEncoder:
        """Set training mode; a frozen backbone stays in eval mode (dropout off, no statistics updates)."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def freeze_unreachable(self, example: Tensor) -> list[str]:
        """Fix the trained backbone's parameters that the chosen outputs do not depend on.

        E.g. CLIP's final LayerNorm acts on the pooled output only, so with ``features="tokens"`` it gets no
        gradient: it could not learn, and distributed training (DDP) requires every trained parameter to get
        one.

        Args:
            example: one input batch (B, ...) of the modality.

        Returns:
            The names of the parameters fixed.
        """
        was_training = self.training
        self.eval()
        named = [(n, p) for n, p in self.backbone.named_parameters() if p.requires_grad]
        with torch.enable_grad():
            out = self(example)
            grads = torch.autograd.grad(out.sum(), [p for _, p in named], allow_unused=True)
        fixed = [n for (n, p), g in zip(named, grads, strict=True) if g is None]
        for (_, p), g in zip(named, grads, strict=True):
            if g is None:
                p.requires_grad_(False)
        self.train(was_training)
        return fixed

    def _grad(self) -> torch.set_grad_enabled:
        """Autograd on only when the backbone trains."""
        return torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen)

    def extra_repr(self) -> str:
        return f"out_dim={self.out_dim}, frozen={self.frozen}"


class _ImageInput(nn.Module):
    """Images (B, C, H, W), uint8 in 0..255 or float in [0, 1] → the model's input (B, 3, S, S), normalised.

    Resizing is bilinear with antialiasing to a square of side ``size`` (the aspect ratio is not kept); a
    one-channel image is repeated to three channels when ``mean`` has three.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.size = size
        self.channels = len(mean)
        self.normalize = ImageNormalize(mean, std)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(
                f"a pre-trained image encoder expects images (batch, C, H, W), got {tuple(x.shape)}"
            )
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
        return self.normalize(x)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _hf_features(out: Any, features: FeatureKind) -> Tensor:
    """``last_hidden_state`` (B, T, D) or ``pooler_output`` (B, D) of a Hugging Face model's output."""
    if features == "tokens":
        return out.last_hidden_state  # type: ignore[no-any-return]
    if getattr(out, "pooler_output", None) is None:
        raise ValueError(f"{type(out).__name__} has no pooler_output; use features: tokens")
    return out.pooler_output  # type: ignore[no-any-return]


class _PretrainedImageEncoder(PretrainedEncoder):
    """A pre-trained image model with its pixel preprocessing (:class:`_ImageInput`) and its output kind."""

    def __init__(
        self,
        backbone: nn.Module,
        out_dim: int,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        freeze: bool = True,
        features: FeatureKind = "tokens",
    ) -> None:
        super().__init__(backbone, out_dim, freeze)
        self.pixels = _ImageInput(size, mean, std)
        self.features = features


class HFImageEncoder(_PretrainedImageEncoder):
    """A Hugging Face vision model: images (B, C, H, W) → ``last_hidden_state`` (B, T, D) or pooled (B, D).

    For a ViT-like model T = 1 + (S / patch)² (the class token and the patch tokens).

    Args:
        backbone: a vision model taking ``pixel_values`` (e.g. ``CLIPVisionModel``, ``ViTModel``).
        out_dim: D.
        size, mean, std: input side in pixels and per-channel normalisation of [0, 1] pixels.
        freeze: see :class:`PretrainedEncoder`.
        features: ``"tokens"`` or ``"pooled"`` (``pooler_output``).
    """

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) → (B, T, D) tokens or (B, D) pooled features, float32."""
        with self._grad():
            return _hf_features(self.backbone(pixel_values=self.pixels(x)), self.features)


class HFTextEncoder(PretrainedEncoder):
    """A Hugging Face language model: token ids (B, T) (+ padding (B, T), True = padding) → (B, T, D) or (B, D).

    The model attends to the non-padding tokens (``attention_mask = ~padding``); a sample made only of padding
    attends to its first token so that no row is fully masked.

    Args:
        backbone: a text model taking ``input_ids`` and ``attention_mask`` (e.g. ``BertModel``,
            ``CLIPTextModel``).
        out_dim: D.
        max_len: longest sequence the model takes (its position table), or None.
        freeze: see :class:`PretrainedEncoder`.
        features: ``"tokens"`` (``last_hidden_state``) or ``"pooled"`` (``pooler_output``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        out_dim: int,
        max_len: int | None = None,
        freeze: bool = True,
        features: FeatureKind = "tokens",
    ) -> None:
        super().__init__(backbone, out_dim, freeze)
        self.max_len = max_len
        self.features = features

    def forward(self, x: Tensor, padding: Tensor | None = None) -> Tensor:
        """Token ids (B, T) int → (B, T, D) tokens or (B, D) pooled features, float32."""
        if x.ndim != 2 or x.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"a pre-trained text encoder expects int token ids (batch, time), got {tuple(x.shape)}"
            )
        if self.max_len is not None and x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds the model's {self.max_len} positions")
        attend = torch.ones_like(x) if padding is None else (~padding).long()
        attend[:, 0] = attend[:, 0] | (attend.sum(dim=1) == 0).long()
        with self._grad():
            return _hf_features(self.backbone(input_ids=x.long(), attention_mask=attend), self.features)


class OpenCLIPImageEncoder(_PretrainedImageEncoder):
    """An open_clip image tower: images (B, C, H, W) → patch tokens (B, N, W) or the image embedding (B, D).

    Args:
        visual: the model's ``visual`` tower; for tokens it must be a vision transformer (``output_tokens``).
        out_dim: feature width.
        size, mean, std: input side in pixels and per-channel normalisation of [0, 1] pixels.
        freeze: see :class:`PretrainedEncoder`.
        features: ``"tokens"`` or ``"pooled"`` (what ``encode_image`` returns, unnormalised).
    """

    def __init__(
        self,
        visual: nn.Module,
        out_dim: int,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        freeze: bool = True,
        features: FeatureKind = "tokens",
    ) -> None:
        super().__init__(visual, out_dim, size, mean, std, freeze, features)
        visual.output_tokens = features == "tokens"  # type: ignore[assignment]

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) → (B, N, W) patch tokens or (B, D) embeddings, float32."""
        with self._grad():
            out = self.backbone(self.pixels(x))
            return out[1] if self.features == "tokens" else out


class OpenCLIPTextEncoder(PretrainedEncoder):
    """An open_clip text tower: token ids (B, T) from open_clip's tokenizer → (B, T, W) tokens or (B, D).

    open_clip's text transformer is causal and pools at the end-of-text token, so it takes no padding mask
    (pad with open_clip's tokenizer: zeros after the end-of-text token); the padding mask still reaches the
    adapter and the fusion.

    Args:
        backbone: for ``"tokens"`` the model's ``text`` tower (``output_tokens``); for ``"pooled"`` the model
            (``encode_text``), with its image tower removed.
        out_dim: feature width.
        freeze: see :class:`PretrainedEncoder`.
        features: ``"tokens"`` or ``"pooled"``.
    """

    def __init__(
        self, backbone: nn.Module, out_dim: int, freeze: bool = True, features: FeatureKind = "tokens"
    ) -> None:
        super().__init__(backbone, out_dim, freeze)
        self.features = features
        if features == "tokens":
            backbone.output_tokens = True  # type: ignore[assignment]

    def forward(self, x: Tensor, padding: Tensor | None = None) -> Tensor:
        """Token ids (B, T) int → (B, T, W) tokens or (B, D) embeddings, float32."""
        if x.ndim != 2 or x.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"a pre-trained text encoder expects int token ids (batch, time), got {tuple(x.shape)}"
            )
        with self._grad():
            if self.features == "tokens":
                return self.backbone(x.long())[1]
            return self.backbone.encode_text(x.long())  # type: ignore[operator]


# ------------------------------------------------------------------------------------------ building
def _import(library: str) -> Any:
    """The library module, or a one-line ImportError saying which extra installs it."""
    import importlib

    module = _MODULE[library]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"model.pretrained uses {module}, which is not installed (or fails to import: {e}); "
            f"pip install 'commlearn[{_EXTRA[library]}]'"
        ) from None


def build_pretrained_encoder(spec: ModalitySpec, entry: Mapping[str, Any]) -> PretrainedEncoder:
    """The pre-trained encoder ``entry`` (a ``model.pretrained`` value) describes, for modality ``spec``.

    Args:
        spec: an ``"image"`` (C, H, W) or ``"tokens"`` (T,) modality.
        entry: see :class:`PretrainedEncoderConfig`.

    Raises:
        ConfigError: a malformed entry, a modality kind without pre-trained encoders, a path that is neither a
            model folder/file nor (``hf``) a cached model, a model without the needed outputs.
        ImportError: the library is not installed (the message names the extra to install).
    """
    check_pretrained({spec.name: entry}, [spec])
    cfg = PretrainedEncoderConfig.from_entry(spec.name, entry)
    where = f"model.pretrained.{spec.name}"
    encoder = _build_hf(spec, cfg, where) if cfg.library == "hf" else _build_open_clip(spec, cfg, where)
    if not cfg.freeze:
        dtype = torch.uint8 if spec.kind == "image" else torch.int64
        encoder.freeze_unreachable(torch.zeros((1, *spec.shape), dtype=dtype))
    return encoder


def _hf_local(path: str, where: str) -> Path:
    """``path`` itself, or the snapshot folder of model id ``path`` in the local Hugging Face cache."""
    folder = Path(path).expanduser()
    if not folder.exists():
        looks_like_id = not folder.is_absolute() and len(Path(path).parts) <= 2 and not path.startswith(".")
        if looks_like_id:
            try:
                from huggingface_hub import snapshot_download

                folder = Path(snapshot_download(path, local_files_only=True))
            except Exception:  # noqa: BLE001 - any failure means: not in the local cache
                raise ConfigError(
                    f"{where}.path: {path!r} is neither a folder nor a model in the local Hugging Face cache "
                    "(nothing is downloaded: save the model with save_pretrained and give its folder)"
                ) from None
        else:
            raise ConfigError(f"{where}.path: no such file or folder: {path}")
    return folder


def _hf_folder(path: str, where: str) -> Path:
    """The local folder of a Hugging Face model (see :func:`_hf_local`), checked to hold one."""
    folder = _hf_local(path, where)
    if not folder.is_dir():
        raise ConfigError(
            f"{where}.path: {folder} is a file; give the folder holding config.json and the weights"
        )
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"{where}.path: {folder} holds no Hugging Face model (no config.json; write one with save_pretrained)"
        )
    return folder


def _hf_image_settings(
    folder: Path, model: nn.Module, cfg: PretrainedEncoderConfig, where: str
) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """Input side and normalisation: the entry's, else ``preprocessor_config.json``'s, else the model config's."""
    pre: dict[str, Any] = {}
    pre_file = folder / "preprocessor_config.json"
    if pre_file.is_file():
        try:
            pre = json.loads(pre_file.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{where}: cannot read {pre_file}: {e}") from None
    size = cfg.image_size or _side(pre.get("crop_size")) or _side(pre.get("size"))
    size = size or getattr(getattr(model, "config", None), "image_size", None)
    if not isinstance(size, int):
        raise ConfigError(f"{where}: the input size of {folder} is unknown; set {where}.image_size (pixels)")
    mean = cfg.mean or pre.get("image_mean")
    std = cfg.std or pre.get("image_std")
    if mean is None or std is None:
        raise ConfigError(
            f"{where}: {folder} has no preprocessor_config.json with image_mean/image_std; set {where}.mean "
            "and .std (per channel, for pixels in [0, 1])"
        )
    return size, tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _side(value: Any) -> int | None:
    """Square side from a Hugging Face size entry: an int, {height, width}, or {shortest_edge}."""
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        for key in ("height", "shortest_edge", "width"):
            if isinstance(value.get(key), int):
                return int(value[key])
    return None


def _build_hf(spec: ModalitySpec, cfg: PretrainedEncoderConfig, where: str) -> PretrainedEncoder:
    transformers = _import("hf")
    folder = _hf_folder(cfg.path, where)
    try:
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{where}.path: cannot load a Hugging Face model from {folder}: {first}") from None
    tower, config_key = (
        ("vision_model", "vision_config") if spec.kind == "image" else ("text_model", "text_config")
    )
    if getattr(model.config, config_key, None) is not None:  # a two-tower model (CLIP, SigLIP...): take one
        if not isinstance(getattr(model, tower, None), nn.Module):
            raise ConfigError(
                f"{where}: {type(model).__name__} from {folder} has no {tower} for this modality"
            )
        model = getattr(model, tower)
    config = model.config
    out_dim = getattr(config, "hidden_size", None)
    if not isinstance(out_dim, int):
        raise ConfigError(f"{where}: {type(model).__name__} from {folder} has no hidden_size in its config")
    if spec.kind == "image":
        if not isinstance(getattr(config, "num_channels", None), int):
            raise ConfigError(
                f"{where}: {type(model).__name__} from {folder} is not a vision model (no num_channels)"
            )
        size, mean, std = _hf_image_settings(folder, model, cfg, where)
        if len(mean) not in (1, spec.shape[0]) and not (spec.shape[0] == 1 and len(mean) == 3):
            raise ConfigError(f"{where}: {len(mean)} mean values for {spec.shape[0]}-channel images")
        return HFImageEncoder(model, out_dim, size, mean, std, cfg.freeze, cfg.features)
    if not isinstance(getattr(config, "vocab_size", None), int):
        raise ConfigError(
            f"{where}: {type(model).__name__} from {folder} is not a text model (no vocab_size)"
        )
    max_len = getattr(config, "max_position_embeddings", None)
    if isinstance(max_len, int) and spec.shape[0] > max_len:
        raise ConfigError(
            f"{where}: sequences of {spec.shape[0]} tokens exceed the model's {max_len} positions; "
            f"tokenize with max_length ≤ {max_len}"
        )
    return HFTextEncoder(
        model, out_dim, max_len if isinstance(max_len, int) else None, cfg.freeze, cfg.features
    )


def _build_open_clip(spec: ModalitySpec, cfg: PretrainedEncoderConfig, where: str) -> PretrainedEncoder:
    open_clip = _import("open_clip")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise ConfigError(f"{where}.path: no such file or folder: {cfg.path}")
    try:
        if path.is_dir():
            model = open_clip.create_model(f"local-dir:{path}", device="cpu")
        else:
            if not cfg.name:
                raise ConfigError(
                    f"{where}.name is required with a weights file (the architecture, e.g. ViT-B-32)"
                )
            model = open_clip.create_model(cfg.name, pretrained=str(path), device="cpu")
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - open_clip raises RuntimeError, KeyError, ValueError...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{where}.path: cannot load an open_clip model from {path}: {first}") from None
    if spec.kind == "image":
        visual = model.visual
        if cfg.features == "tokens" and not hasattr(visual, "output_tokens"):
            raise ConfigError(
                f"{where}: the image tower of {cfg.name or path} gives no token outputs; set features: pooled"
            )
        pre = dict(getattr(visual, "preprocess_cfg", None) or {})
        size = cfg.image_size or _open_clip_side(pre.get("size", getattr(visual, "image_size", None)))
        if size is None:
            raise ConfigError(
                f"{where}: the input size of {cfg.name or path} is unknown; set {where}.image_size"
            )
        mean = (
            cfg.mean
            or pre.get("mean")
            or getattr(visual, "image_mean", None)
            or open_clip.OPENAI_DATASET_MEAN
        )
        std = cfg.std or pre.get("std") or getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        encoder: PretrainedEncoder = OpenCLIPImageEncoder(
            visual, 0, size, tuple(mean), tuple(std), cfg.freeze, cfg.features
        )
        dummy: Tensor = torch.zeros(1, spec.shape[0], size, size)
    else:
        if cfg.features == "tokens":
            text = getattr(model, "text", None)
            if text is None or not hasattr(text, "output_tokens"):
                raise ConfigError(
                    f"{where}: the text tower of {cfg.name or path} gives no token outputs; set features: pooled"
                )
            backbone: nn.Module = text
        else:
            model.visual = nn.Identity()  # encode_text never uses the image tower: do not keep its weights
            backbone = model
        encoder = OpenCLIPTextEncoder(backbone, 0, cfg.freeze, cfg.features)
        dummy = torch.zeros(1, spec.shape[0], dtype=torch.int64)
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        encoder.out_dim = int(encoder(dummy).shape[-1])
    encoder.train(was_training)
    return encoder


def _open_clip_side(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], int):
        return int(value[0])
    return None
