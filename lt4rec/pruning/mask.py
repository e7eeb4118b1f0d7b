"""``Mask``: a validated mapping from weight name to a 0/1 tensor (open_lth style)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch


class Mask(Mapping[str, torch.Tensor]):
    """Immutable mapping ``weight name -> float 0/1 tensor`` (same shape as the weight).

    Construction checks every value is a tensor containing only 0 and 1; key order is kept
    (the last non-embedding key is treated as the output layer by :func:`prune`). Values
    are stored on CPU whatever device the weights live on.
    """

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        self._m: dict[str, torch.Tensor] = {}
        for name, t in masks.items():
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"mask {name!r} is not a tensor")
            f = t.detach().to("cpu", torch.float32)  # masks are kept on CPU
            bad = (f != 0) & (f != 1)
            if bool(bad.any()):
                raise ValueError(f"mask {name!r} has values other than 0 and 1")
            self._m[name] = f.clone()

    @classmethod
    def ones_like(cls, weights: Mapping[str, torch.Tensor]) -> Mask:
        """The dense mask (everything kept) for ``weights``."""
        return cls({n: torch.ones_like(w, dtype=torch.float32) for n, w in weights.items()})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._m[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._m)

    def __len__(self) -> int:
        return len(self._m)

    @property
    def numel(self) -> int:
        """Number of maskable weights."""
        return sum(int(t.numel()) for t in self._m.values())

    @property
    def num_nonzero(self) -> int:
        """Number of weights kept."""
        return sum(int(t.sum().item()) for t in self._m.values())

    @property
    def density(self) -> float:
        """Fraction kept (1.0 for an empty mask)."""
        n = self.numel
        return self.num_nonzero / n if n else 1.0

    @property
    def sparsity(self) -> float:
        return 1.0 - self.density

    def check_shapes(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Raise ``ValueError`` naming the first mask whose weight is missing or mis-shaped."""
        for name, m in self._m.items():
            if name not in weights:
                raise ValueError(f"mask {name!r} has no matching weight")
            if tuple(weights[name].shape) != tuple(m.shape):
                raise ValueError(
                    f"mask {name!r} shape {tuple(m.shape)} != weight shape "
                    f"{tuple(weights[name].shape)}"
                )

    def subset(self, names: list[str]) -> Mask:
        return Mask({n: self._m[n] for n in names})

    def __repr__(self) -> str:
        return f"Mask({len(self)} layers, density={self.density:.4f})"
