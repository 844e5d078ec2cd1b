"""commlearn: contrastive multimodal learning (CoMM)."""

__version__ = "0.1.0"
