"""How circuitmap trains an SAE for one resid_pre layer (saved beside the SAE)."""

from __future__ import annotations

from dataclasses import dataclass

from circuitmap.config import Architecture
from circuitmap.errors import check_literals, check_number


@dataclass
class SAETrainConfig:
    """How circuitmap trains an SAE for one resid_pre layer."""

    architecture: Architecture = "topk"
    width: int = 2048
    k: int = 16  # TopK: active latents per token (16 beat 32 and 64 on the faithfulness benchmark)
    l0_coefficient: float = 1.0  # JumpReLU: sparsity penalty
    n_tokens: int = 200_000
    eval_tokens: int = 10_000
    context: int = 128
    batch_tokens: int = 512
    lr: float = 1e-3
    seed: int = 0
    eval_texts: int = 8  # texts for the spliced next-token loss

    def __post_init__(self) -> None:
        check_literals(self)
        for name in ("width", "k", "n_tokens", "eval_tokens", "context", "batch_tokens"):
            check_number(name, getattr(self, name), 1)
        check_number("lr", self.lr, 0, above=True)
        check_number("l0_coefficient", self.l0_coefficient, 0)
