"""Data sets, batch types and loaders."""

from commlearn.data.arrays import load_arrays
from commlearn.data.base import (
    ArrayDataset,
    ModalitySpec,
    MultimodalBatch,
    MultimodalDataset,
    infer_spec,
)
from commlearn.data.loader import BatchLoader
from commlearn.data.synthetic import make_synthetic
from commlearn.data.trifeature import RenderSettings, TrifeatureImages, load_or_render, make_splits, render
from commlearn.data.trifeature_pairs import (
    Roles,
    TrifeatureData,
    TrifeaturePairs,
    build_trifeature,
    sample_pairs,
    synergy_mapping,
)

__all__ = [
    "ArrayDataset",
    "BatchLoader",
    "ModalitySpec",
    "MultimodalBatch",
    "MultimodalDataset",
    "RenderSettings",
    "Roles",
    "TrifeatureData",
    "TrifeatureImages",
    "TrifeaturePairs",
    "build_trifeature",
    "infer_spec",
    "load_arrays",
    "load_or_render",
    "make_splits",
    "make_synthetic",
    "render",
    "sample_pairs",
    "synergy_mapping",
]
