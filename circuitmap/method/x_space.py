"""How the optimised X is parameterised: X itself ("resid", the report) or a sparse code of the
layer's SAE ("sae"); see :mod:`circuitmap.method.optimise`. Both hold a batch of rows, each
with its start, and move a row part of the way back towards its start (:meth:`settle`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from sae_lens import SAE


@dataclass
class LayerSpace:
    """What X's optimisation needs of one upstream layer."""

    layer: int
    mean: torch.Tensor  # (d_model,) the Mean Vector
    # The corpus resid norms at the layer, which bound ||X|| (None: no bound).
    norm_range: tuple[float, float] | None
    sae: SAE | None = None  # the layer's SAE (space "sae")


def rescaled(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """(..., d_model) ``x`` with each row's norm scaled into [low, high] (differentiable)."""
    norm = x.norm(dim=-1, keepdim=True)
    return x * (norm.clamp(low, high) / norm.clamp_min(1e-12))


def _sae(space: LayerSpace) -> SAE:
    if space.sae is None:
        raise ValueError(f"layer {space.layer} has no SAE to optimise X's code in")
    return space.sae


class CodeRows:
    """Space "sae": X = decode(z) + e for each group of consecutive rows that share one
    :class:`LayerSpace` (one parameter (rows, d_sae) a group), and the L1 pull towards the Mean
    Vector's code."""

    def __init__(self, spaces: list[LayerSpace], inits: torch.Tensor) -> None:
        self.groups: list[tuple[LayerSpace, slice]] = []
        for space in spaces:
            _sae(space).requires_grad_(False)  # the SAE is fixed; only the codes learn
        for row, space in enumerate(spaces):
            if self.groups and self.groups[-1][0] is space:
                self.groups[-1] = (space, slice(self.groups[-1][1].start, row + 1))
            else:
                self.groups.append((space, slice(row, row + 1)))
        with torch.no_grad():
            self.mean_codes = [self._encode(s, s.mean[None])[0] for s, _ in self.groups]
            self.errors = [
                s.mean.float() - _sae(s).decode(c[None])[0].float().cpu()
                for (s, _), c in zip(self.groups, self.mean_codes, strict=True)
            ]  # groups x (d_model,)
            starts = [self._encode(s, inits[rows]) for s, rows in self.groups]
        self.scales = [max(c.max().item(), 1e-6) for c in self.mean_codes]  # groups
        self.starts = starts  # groups x (rows, d_sae)
        self.params = [torch.nn.Parameter(z.clone()) for z in starts]
        self.best = [z.clone() for z in starts]  # see keep

    @staticmethod
    def _encode(space: LayerSpace, x: torch.Tensor) -> torch.Tensor:
        """(rows, d_model) -> (rows, d_sae) on the CPU."""
        sae = _sae(space)
        return sae.encode(x.float().to(sae.W_enc.device)).float().cpu()

    def vectors(self, t: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, d_model) X of every row, norms rescaled into their corpus range; with ``t``
        (rows,), each row's code taken at ``t`` of the way from its start."""
        parts = []
        for (space, rows), z, z0, error in zip(
            self.groups, self.params, self.starts, self.errors, strict=True
        ):
            if t is not None:
                z = z0 + t[rows, None] * (z - z0)
            x = _sae(space).decode(z.to(_sae(space).W_dec.device)).float().cpu() + error
            parts.append(x if space.norm_range is None else rescaled(x, *space.norm_range))
        return torch.cat(parts)

    def settle(self, t: torch.Tensor) -> None:
        """Move each row's code to ``t`` (rows,) of the way from its start."""
        with torch.no_grad():
            for (_, rows), z, z0 in zip(self.groups, self.params, self.starts, strict=True):
                z.copy_(z0 + t[rows, None] * (z - z0))

    def keep(self, rows: torch.Tensor) -> None:
        """Remember the current code of the rows where ``rows`` (rows,) is true."""
        with torch.no_grad():
            for (_, group), z, best in zip(self.groups, self.params, self.best, strict=True):
                best.copy_(torch.where(rows[group, None], z, best))

    def restore(self) -> None:
        """Every row back to its remembered code."""
        with torch.no_grad():
            for z, best in zip(self.params, self.best, strict=True):
                z.copy_(best)

    def codes(self) -> torch.Tensor:
        """(rows, d_sae) every row's code."""
        return torch.cat([z.detach() for z in self.params])

    def penalty(self) -> torch.Tensor:
        """Sum over rows of ||z - encode(m)||_1 / (m's largest feature activation)."""
        pulls = [
            (z - c).abs().sum() / s
            for z, c, s in zip(self.params, self.mean_codes, self.scales, strict=True)
        ]
        return torch.stack(pulls).sum()

    def project(self) -> None:
        with torch.no_grad():
            for z in self.params:
                z.clamp_(min=0)


class ResidRows:
    """Space "resid": X itself, one parameter a row, ||X|| clamped after every step."""

    def __init__(self, spaces: list[LayerSpace], inits: torch.Tensor) -> None:
        self.spaces = spaces
        starts = [self._clamped(x, s) for x, s in zip(inits.float(), spaces, strict=True)]
        self.starts = torch.stack(starts)  # (rows, d_model), norms in range
        self.params = [torch.nn.Parameter(row.clone()) for row in self.starts]
        self.best = self.starts.clone()  # (rows, d_model), see keep

    def vectors(self, t: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, d_model) X; with ``t`` (rows,), each row ``t`` of the way from its start."""
        xs = torch.stack(self.params)
        if t is None:
            return xs
        xs = self.starts + t[:, None] * (xs - self.starts)
        return torch.stack([self._clamped(x, s) for x, s in zip(xs, self.spaces, strict=True)])

    def settle(self, t: torch.Tensor) -> None:
        with torch.no_grad():
            for x, row in zip(self.params, self.vectors(t), strict=True):
                x.copy_(row)

    def keep(self, rows: torch.Tensor) -> None:
        """Remember the current X of the rows where ``rows`` (rows,) is true."""
        with torch.no_grad():
            self.best.copy_(torch.where(rows[:, None], torch.stack(self.params), self.best))

    def restore(self) -> None:
        """Every row back to its remembered X."""
        with torch.no_grad():
            for x, best in zip(self.params, self.best, strict=True):
                x.copy_(best)

    def project(self) -> None:
        with torch.no_grad():
            for x, space in zip(self.params, self.spaces, strict=True):
                x.copy_(self._clamped(x, space))

    @staticmethod
    def _clamped(x: torch.Tensor, space: LayerSpace) -> torch.Tensor:
        return x if space.norm_range is None else rescaled(x, *space.norm_range)
