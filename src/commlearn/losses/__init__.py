"""Contrastive objectives: pure tensor-in, scalar-out modules."""

from commlearn.losses.comm import CoMMLoss, LossOutput
from commlearn.losses.cross import CrossLoss, CrossSelfLoss
from commlearn.losses.info_nce import info_nce, nce_with_accuracy

__all__ = ["CoMMLoss", "CrossLoss", "CrossSelfLoss", "LossOutput", "info_nce", "nce_with_accuracy"]
