"""Contrastive objectives: pure tensor-in, scalar-out modules."""

from commlearn.losses.base import ContrastiveLoss, LossOutput
from commlearn.losses.cmc import CMCLoss, cross_view_nce
from commlearn.losses.comm import CoMMLoss
from commlearn.losses.cross import CrossLoss, CrossSelfLoss
from commlearn.losses.factorcl import FactorCLLoss, PairCritic, nce_club_upper_bound, nce_lower_bound
from commlearn.losses.infmasking import InfMaskingLoss, draw_token_keep_masks
from commlearn.losses.info_nce import info_nce, nce_with_accuracy
from commlearn.losses.supcon import SupConLoss

__all__ = [
    "CMCLoss",
    "CoMMLoss",
    "ContrastiveLoss",
    "CrossLoss",
    "CrossSelfLoss",
    "FactorCLLoss",
    "InfMaskingLoss",
    "LossOutput",
    "PairCritic",
    "SupConLoss",
    "cross_view_nce",
    "draw_token_keep_masks",
    "info_nce",
    "nce_club_upper_bound",
    "nce_lower_bound",
    "nce_with_accuracy",
]
