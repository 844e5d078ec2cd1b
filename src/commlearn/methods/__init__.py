"""Self-supervised (and supervised) methods on a shared Lightning base, and their registry."""

from commlearn.methods.base import BaseMethod, concat_views
from commlearn.methods.comm import CoMM
from commlearn.methods.cross import Cross, CrossSelf, UnimodalEncoders
from commlearn.methods.registry import METHODS, Optim, TaskInfo, build_method, method_options

__all__ = [
    "METHODS",
    "BaseMethod",
    "CoMM",
    "Cross",
    "CrossSelf",
    "Optim",
    "TaskInfo",
    "UnimodalEncoders",
    "build_method",
    "concat_views",
    "method_options",
]
