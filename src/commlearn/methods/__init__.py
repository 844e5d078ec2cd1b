"""Self-supervised (and supervised) methods on a shared Lightning base, and their registry."""

from commlearn.methods.base import BaseMethod, concat_views
from commlearn.methods.cmc import CMC
from commlearn.methods.comm import CoMM
from commlearn.methods.cross import Cross, CrossSelf, UnimodalEncoders
from commlearn.methods.factorcl import FactorCL, FactorCLSup
from commlearn.methods.registry import METHODS, Optim, TaskInfo, build_method, method_options
from commlearn.methods.simclr import SimCLR
from commlearn.methods.supcon import SupCon
from commlearn.methods.supervised import Supervised, load_encoder_weights

__all__ = [
    "CMC",
    "METHODS",
    "BaseMethod",
    "CoMM",
    "Cross",
    "CrossSelf",
    "FactorCL",
    "FactorCLSup",
    "Optim",
    "SimCLR",
    "SupCon",
    "Supervised",
    "TaskInfo",
    "UnimodalEncoders",
    "build_method",
    "concat_views",
    "load_encoder_weights",
    "method_options",
]
