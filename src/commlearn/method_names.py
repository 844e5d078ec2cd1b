"""The names of the registered methods, importable without torch.

The command line checks a method name (``commlearn experiment --methods``) before it loads the training
stack; :data:`commlearn.methods.METHODS` maps the same names to the classes, and a test keeps the two equal.
"""

from __future__ import annotations

METHOD_NAMES: tuple[str, ...] = (
    "comm",
    "infmasking",
    "cross",
    "cross_self",
    "factorcl",
    "factorcl_sup",
    "simclr",
    "supcon",
    "cmc",
    "supervised",
)
