"""Low-rank adapters applied on top of a shared linear layer (Stand-In style decoupling)."""

from __future__ import annotations

from torch import Tensor, nn


class LoRA(nn.Module):
    """``x -> up(down(x)) * alpha / rank``; ``up`` starts at zero so the adapter starts as a no-op."""

    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        self.down = nn.Linear(in_dim, rank, bias=False)
        self.up = nn.Linear(rank, out_dim, bias=False)
        self.scale = (alpha if alpha is not None else rank) / rank
        nn.init.kaiming_uniform_(self.down.weight, a=5**0.5)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.down(x)) * self.scale


def linear_with_lora(base: nn.Linear, lora: LoRA | None, x: Tensor) -> Tensor:
    """``base(x)`` plus the adapter's delta when one is given."""
    y = base(x)
    return y if lora is None else y + lora(x)
