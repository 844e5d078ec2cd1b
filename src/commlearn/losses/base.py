"""What every loss returns, and the shell of the losses that have a temperature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from commlearn.losses.info_nce import check_temperature


@dataclass
class LossOutput:
    """A loss value with its named parts for logging.

    Attributes:
        loss: the scalar to minimise (0-dim, with gradient).
        terms: detached 0-dim tensors, one per named term (``"nce_full"``, ``"nce_m0"``...).
        accuracies: detached 0-dim top-1 SSL accuracies, one per term.
    """

    loss: Tensor
    terms: dict[str, Tensor]
    accuracies: dict[str, Tensor]

    def log_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """All values flattened with ``prefix`` for a logger."""
        out = {f"{prefix}loss": self.loss.detach()}
        out.update({f"{prefix}{k}": v for k, v in self.terms.items()})
        out.update({f"{prefix}acc_{k}": v for k, v in self.accuracies.items()})
        return out


class ContrastiveLoss(nn.Module):
    """Shell of a loss with a temperature: ``compute(...)`` gives a :class:`LossOutput`, ``forward(...)`` its
    scalar.

    Args:
        temperature: τ > 0.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        check_temperature(temperature)
        self.temperature = temperature

    def compute(self, *args: Any, **kwargs: Any) -> LossOutput:
        """The loss with its named terms and accuracies."""
        raise NotImplementedError

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """The scalar loss of :meth:`compute`."""
        return self.compute(*args, **kwargs).loss
