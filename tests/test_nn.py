"""Fusion model: masked passes equal separate passes, padding is honoured, any number of modalities."""

from __future__ import annotations

import pytest
import torch

from commlearn.data.base import ModalitySpec
from commlearn.nn import (
    AlexNetEncoder,
    ConvEncoder,
    FeatureTokenizer,
    FusionTransformer,
    GRUEncoder,
    MLPEncoder,
    MMFusion,
    PatchTokens,
    ProjectionHead,
    SequenceTokens,
    SequenceTransformerEncoder,
    VectorToken,
    pool_features,
)
from commlearn.nn.factory import ModelConfig, build_fusion


def _model(n_seq: int = 1) -> tuple[MMFusion, list[torch.Tensor], list[torch.Tensor | None]]:
    torch.manual_seed(0)
    encoders = [ConvEncoder(3, (8, 16)), MLPEncoder(6, (16,), 16)]
    adapters = [PatchTokens(16, 32, (4, 4)), FeatureTokenizer(16, 32)]
    xs: list[torch.Tensor] = [torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8), torch.randn(5, 6)]
    pads: list[torch.Tensor | None] = [None, None]
    for k in range(n_seq):
        encoders.append(GRUEncoder(4, 16))
        adapters.append(SequenceTokens(16, 32, max_len=7 + k))
        xs.append(torch.randn(5, 7 + k, 4))
        pad = torch.zeros(5, 7 + k, dtype=torch.bool)
        pad[:, :3] = True  # front padding
        pad[0] = False
        pads.append(pad)
    model = MMFusion(encoders, adapters, 32, n_heads=4, n_layers=2).eval()
    return model, xs, pads


@pytest.mark.parametrize("n_seq", [0, 1, 2])
def test_all_masks_equal_separate_passes(n_seq: int) -> None:
    model, xs, pads = _model(n_seq)
    with torch.no_grad():
        zs = model.forward_all_masks(xs, pads)
        assert len(zs) == model.n_modalities + 1
        for i in range(model.n_modalities):
            torch.testing.assert_close(zs[i], model(xs, pads, modalities=[i]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(zs[-1], model(xs, pads), atol=1e-5, rtol=1e-5)


def test_dropping_tokens_equals_attention_masking() -> None:
    fusion = FusionTransformer(16, 4, 2).eval()
    a, b = torch.randn(3, 5, 16), torch.randn(3, 4, 16)
    pad = torch.cat([torch.zeros(3, 5, dtype=torch.bool), torch.ones(3, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(fusion(a), fusion(torch.cat([a, b], 1), pad), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_padding_is_honoured(pool: str) -> None:
    fusion = FusionTransformer(16, 4, 1, pool=pool).eval()  # type: ignore[arg-type]
    tokens = torch.randn(2, 6, 16)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[:, 4:] = True
    changed = tokens.clone()
    changed[:, 4:] = 100.0  # garbage in padded positions must not matter
    with torch.no_grad():
        torch.testing.assert_close(fusion(tokens, pad), fusion(changed, pad))


def test_sequence_padding_honoured_end_to_end() -> None:
    model, xs, pads = _model(1)
    changed = [x.clone() for x in xs]
    changed[2][pads[2]] = 50.0  # type: ignore[index]
    with torch.no_grad():
        for a, b in zip(
            model.forward_all_masks(xs, pads), model.forward_all_masks(changed, pads), strict=True
        ):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_missing_modality_is_left_out() -> None:
    model, xs, pads = _model(0)
    with torch.no_grad():
        torch.testing.assert_close(model([xs[0], None], pads), model(xs, pads, modalities=[0]))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_any_number_of_modalities(n: int) -> None:
    specs = [ModalitySpec(f"v{i}", "vector", (4 + i,)) for i in range(n)]
    model = build_fusion(specs, ModelConfig(embed_dim=16, n_heads=2))
    xs = [torch.randn(3, 4 + i) for i in range(n)]
    zs = model.forward_all_masks(xs)
    assert len(zs) == n + 1 and all(z.shape == (3, 16) for z in zs)


def test_factory_handles_every_kind() -> None:
    specs = [
        ModalitySpec("img", "image", (3, 32, 32)),
        ModalitySpec("seq", "sequence", (10, 5)),
        ModalitySpec("vec", "vector", (7,)),
        ModalitySpec("tok", "tokens", (6,)),
    ]
    cfg = ModelConfig(embed_dim=16, n_heads=2, image_channels=[8, 8], vocab_size=20, sequence_dim=8)
    model = build_fusion(specs, cfg)
    xs = [
        torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8),
        torch.randn(2, 10, 5),
        torch.randn(2, 7),
        torch.randint(0, 20, (2, 6)),
    ]
    assert model(xs).shape == (2, 16)
    cfg2 = ModelConfig(embed_dim=16, n_heads=2, sequence_encoder="transformer", vector_encoder="tokenizer")
    model2 = build_fusion(specs[1:3], cfg2)
    assert model2(xs[1:3], [torch.zeros(2, 10, dtype=torch.bool), None]).shape == (2, 16)


def test_small_blocks_shapes() -> None:
    assert VectorToken(5, 8)(torch.randn(3, 5)).shape == (3, 1, 8)
    assert ProjectionHead(8, (16, 16), 4)(torch.randn(3, 8)).shape == (3, 4)
    enc = SequenceTransformerEncoder(5, 16, 2, 1, max_len=9)
    pad = torch.ones(2, 9, dtype=torch.bool)  # an all-padding row must not produce NaN
    assert torch.isfinite(enc(torch.randn(2, 9, 5), pad)).all()
    assert pool_features(torch.randn(2, 4, 3, 3)).shape == (2, 4)
    pad = torch.tensor([[True, False], [False, False]])
    seq = torch.tensor([[[9.0], [1.0]], [[1.0], [3.0]]])
    assert pool_features(seq, pad).squeeze(1).tolist() == [1.0, 2.0]


def test_alexnet_is_the_papers_trunk() -> None:
    """Five convolutions (11×11/4, 5×5, 3×3, 3×3, 3×3; 64-192-384-256-256 channels), three max-pools:
    224 px images → (B, 256, 6, 6), the paper's 36 tokens of Trifeature."""
    enc = AlexNetEncoder()
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs] == [
        (11, 4, 64), (5, 1, 192), (3, 1, 384), (3, 1, 256), (3, 1, 256)
    ]  # fmt: skip
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in enc.modules()) == 3
    out = enc(torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8))
    assert out.shape == (2, 256, 6, 6) and out.dtype == torch.float32


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: MMFusion([MLPEncoder(3)], [], 8), "1 encoders but 0 adapters"),
        (lambda: FusionTransformer(10, 3), "divisible by n_heads"),
        (lambda: FusionTransformer(8, 2, pool="max"), "pool must be"),  # type: ignore[arg-type]
        (lambda: _model(0)[0]([torch.randn(2, 3, 16, 16)], None), "expected 2 modality inputs"),
        (lambda: _model(0)[0]([torch.randn(2, 3, 16, 16), torch.randn(3, 6)], None), "same batch size"),
        (lambda: _model(0)[0](_model(0)[1], None, modalities=[5]), "modalities must be in"),
        (lambda: MLPEncoder(4)(torch.randn(2, 5)), "expects \\(batch, 4\\)"),
        (lambda: PatchTokens(4, 8, (2, 2))(torch.randn(1, 4, 3, 3)), "PatchTokens expects"),
        (lambda: SequenceTokens(4, 8, 5)(torch.randn(1, 6, 4)), "exceeds max_len"),
        (lambda: build_fusion([ModalitySpec("v", "vector", (3,))], ModelConfig(pool="max")), "model.pool"),
    ],
)
def test_bad_input_errors(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()
