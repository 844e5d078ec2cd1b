"""Data sets, batch types and loaders."""

from commlearn.data.arrays import load_arrays
from commlearn.data.base import (
    ArrayDataset,
    ModalitySpec,
    MultimodalBatch,
    MultimodalDataset,
    infer_spec,
)
from commlearn.data.files import DataFileError
from commlearn.data.hateful_memes import load_hateful_memes
from commlearn.data.images import FileImageDataset
from commlearn.data.loader import BatchLoader
from commlearn.data.mmimdb import GENRES, load_mmimdb_hdf5, load_mmimdb_raw
from commlearn.data.multibench import AFFECT_DATASETS, load_affect, load_mimic, mimic_split
from commlearn.data.splits import DataSplits, take_rows
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
from commlearn.data.user_arrays import Standardizer, load_user_arrays
from commlearn.data.vision_touch import VisionTouchEpisodes, load_vision_touch, vt_split

__all__ = [
    "AFFECT_DATASETS",
    "GENRES",
    "ArrayDataset",
    "BatchLoader",
    "DataFileError",
    "DataSplits",
    "FileImageDataset",
    "ModalitySpec",
    "MultimodalBatch",
    "MultimodalDataset",
    "RenderSettings",
    "Roles",
    "Standardizer",
    "TrifeatureData",
    "TrifeatureImages",
    "TrifeaturePairs",
    "VisionTouchEpisodes",
    "build_trifeature",
    "infer_spec",
    "load_affect",
    "load_arrays",
    "load_hateful_memes",
    "load_mimic",
    "load_mmimdb_hdf5",
    "load_mmimdb_raw",
    "load_or_render",
    "load_user_arrays",
    "load_vision_touch",
    "make_splits",
    "make_synthetic",
    "mimic_split",
    "render",
    "sample_pairs",
    "synergy_mapping",
    "take_rows",
    "vt_split",
]
