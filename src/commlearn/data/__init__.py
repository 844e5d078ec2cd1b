"""Data sets, batch types and loaders."""

from commlearn.data.base import (
    ArrayDataset,
    ModalitySpec,
    MultimodalBatch,
    MultimodalDataset,
    infer_spec,
)

__all__ = ["ArrayDataset", "ModalitySpec", "MultimodalBatch", "MultimodalDataset", "infer_spec"]
