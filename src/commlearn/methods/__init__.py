"""Self-supervised (and supervised) methods on a shared Lightning base, and their registry."""

from commlearn.methods.base import BaseMethod, BuildContext, FusionMethod, concat_views
from commlearn.methods.comm import CoMM
from commlearn.methods.factorcl import FactorCL, FactorCLSup
from commlearn.methods.infmasking import InfMasking
from commlearn.methods.registry import METHODS, build_method, method_class, method_options
from commlearn.methods.supervised import Supervised, load_encoder_weights
from commlearn.methods.unimodal import CMC, Cross, CrossSelf, SimCLR, SupCon, UnimodalEncoders, UnimodalMethod

__all__ = [
    "CMC",
    "METHODS",
    "BaseMethod",
    "BuildContext",
    "CoMM",
    "Cross",
    "CrossSelf",
    "FactorCL",
    "FactorCLSup",
    "FusionMethod",
    "InfMasking",
    "SimCLR",
    "SupCon",
    "Supervised",
    "UnimodalEncoders",
    "UnimodalMethod",
    "build_method",
    "concat_views",
    "load_encoder_weights",
    "method_class",
    "method_options",
]
