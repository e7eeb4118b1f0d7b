"""Building blocks shared by every model: the embedding block, MLPs and the model base class.

Models are plain ``nn.Module`` compositions of named blocks (``embeddings`` -> ``bottom`` ->
``towers``) in the torchrec / DeepCTR style; training, IO and evaluation live elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import Batch, FieldSchema
from lt4rec.models.interaction import interaction_block


class EmbeddingBlock(nn.Module):
    """Hashed embeddings of every categorical field, concatenated with the dense features.

    One table of ``schema.hash_buckets`` rows per sparse / multi-valued field, stored stacked
    in a single 2-D parameter so that a batch is one gather whose gradient covers only the
    rows it touched (the optimiser updates just those rows, see :meth:`row_grad`). Row 0 of
    every table is the padding id and is excluded from mean pooling. Output: ``[B, out_dim]`` with
    ``out_dim = (n_sparse + n_multi) * dim + n_dense`` plus, with ``interaction="dot"``, the
    ``F * (F - 1) / 2`` pairwise dot products of the ``F = n_sparse + n_multi`` field vectors
    (:mod:`lt4rec.models.interaction`). :meth:`lookup` and :meth:`combine` split the forward
    pass so that a model can transform the field vectors (e.g. per-task masks) in between.
    """

    offsets: torch.Tensor  # [n_tables] first row of each field's table

    def __init__(self, schema: FieldSchema, dim: int, interaction: str = "none") -> None:
        super().__init__()
        self.schema = schema
        self.dim = dim
        n_tables = schema.n_sparse + schema.n_multi
        self.n_fields = n_tables
        weight = torch.empty(max(n_tables, 1) * schema.hash_buckets, dim)  # [tables*buckets, dim]
        nn.init.normal_(weight, std=0.05)
        self.weight = nn.Parameter(weight)
        offsets = torch.arange(n_tables, dtype=torch.long) * schema.hash_buckets
        self.register_buffer("offsets", offsets, persistent=False)
        self.interaction = interaction_block(interaction, n_tables)  # no parameters
        n_pairs = self.interaction.out_dim if self.interaction is not None else 0
        self.out_dim = n_tables * dim + schema.n_dense + n_pairs
        self._rows: tuple[torch.Tensor, torch.Tensor] | None = None  # see _lookup
        self._pos: torch.Tensor | None = None  # scratch id -> distinct index, see _distinct

    def check_batch(self, batch: Batch) -> None:
        """Raise ``ValueError`` when ``batch`` was encoded with a different field layout."""
        s = self.schema
        want = {
            "sparse": (s.n_sparse,),
            "multi": (s.n_multi, s.multi_max_len),
            "dense": (s.n_dense,),
        }
        for group, shape in want.items():
            got = tuple(getattr(batch, group).shape[1:])
            if got != shape:
                raise ValueError(
                    f"batch {group} features have shape {got} per row but the model's field "
                    f"schema expects {shape} ({group} fields: {list(getattr(s, group))}); "
                    "was the data encoded with a different feature spec?"
                )

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.combine(*self.lookup(batch))

    def lookup(self, batch: Batch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(field vectors [B, F, dim] or None, dense features [B, n_dense] or None)``."""
        self.check_batch(batch)
        s = self.schema
        ids = []
        if s.n_sparse:
            ids.append(batch.sparse + self.offsets[: s.n_sparse])  # [B, n_sparse]
        if s.n_multi:
            ids.append((batch.multi + self.offsets[s.n_sparse :].view(1, -1, 1)).flatten(1))
        fields: torch.Tensor | None = None
        if ids:
            flat = torch.cat(ids, dim=1)  # [B, n_sparse + n_multi * L]
            vec = self._lookup(flat)  # [B, n_sparse + n_multi * L, dim]
            parts = [vec[:, : s.n_sparse]] if s.n_sparse else []  # [B, n_sparse, dim]
            if s.n_multi:
                mv = vec[:, s.n_sparse :].view(-1, s.n_multi, s.multi_max_len, self.dim)
                keep = (batch.multi != 0).unsqueeze(-1).to(mv.dtype)  # [B, n_multi, L, 1]
                parts.append((mv * keep).sum(2) / keep.sum(2).clamp_min(1.0))  # [B, n_multi, dim]
            fields = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]  # [B, F, dim]
        dense = batch.dense.to(self.weight.dtype) if s.n_dense else None  # [B, n_dense]
        return fields, dense

    def combine(self, fields: torch.Tensor | None, dense: torch.Tensor | None) -> torch.Tensor:
        """Flat field vectors, dense features and interactions: ``[B, out_dim]``."""
        parts: list[torch.Tensor] = []
        if fields is not None:
            parts.append(fields.flatten(1))  # [B, F * dim]
        if dense is not None:
            parts.append(dense)
        if fields is not None and self.interaction is not None:
            parts.append(self.interaction(fields))  # [B, F * (F - 1) / 2]
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def _lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ``ids``; when training, through a leaf of the touched rows only.

        The leaf ``[U, dim]`` (U = distinct ids in the batch) receives the row gradients,
        which :meth:`row_grad` hands to the optimiser for a lazy (row-sparse) update, so
        no table-sized gradient is ever materialised or sorted.
        """
        if not (self.training and torch.is_grad_enabled() and self.weight.requires_grad):
            self._rows = None
            return F.embedding(ids, self.weight)
        uniq, inv = self._distinct(ids)  # [U], ids.shape
        leaf = self.weight.detach()[uniq].requires_grad_(True)  # [U, dim]
        self._rows = (uniq, leaf)
        return F.embedding(inv, leaf)

    def _distinct(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted distinct ids and each id's index into them, via a table-sized bitmap.

        Linear time; much faster than ``torch.unique`` (a sort) for hashed ids on CPU.
        """
        n = self.weight.shape[0]
        present = torch.zeros(n, dtype=torch.bool, device=ids.device)
        present[ids.flatten()] = True
        uniq = present.nonzero().squeeze(1)  # [U] ascending
        if self._pos is None or self._pos.device != ids.device:
            self._pos = torch.empty(n, dtype=torch.long, device=ids.device)  # scratch
        self._pos[uniq] = torch.arange(uniq.numel(), device=ids.device)
        return uniq, self._pos[ids]

    def row_grad(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(rows [U], grad [U, dim])`` of the last training forward, or None."""
        if self._rows is None or self._rows[1].grad is None:
            return None
        return self._rows[0], self._rows[1].grad


def embedding_block(cfg: ModelConfig, schema: FieldSchema) -> EmbeddingBlock:
    """The embedding block of ``cfg`` (``model.embedding_dim``, ``model.interaction``)."""
    return EmbeddingBlock(schema, cfg.embedding_dim, cfg.interaction)


def mlp(
    in_dim: int, hidden: Sequence[int], dropout: float = 0.0, out_dim: int | None = None
) -> nn.Sequential:
    """Linear+ReLU(+Dropout) per hidden width, then an optional linear output layer."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(nn.Linear(d, h))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = h
    if out_dim is not None:
        layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def out_width(in_dim: int, hidden: Sequence[int]) -> int:
    """Width after an MLP of ``hidden`` widths (``in_dim`` when there are none)."""
    return hidden[-1] if len(hidden) else in_dim


class MultiTaskModel(nn.Module):
    """Base of every model: ``forward(batch) -> {"ctr": logits[B], "cvr": logits[B]}``.

    ``cvr_objective`` (when not None) is the CVR loss the model is defined with, which wins
    over ``train.cvr_loss``: ``entire_space`` trains the CVR head on all rows through
    CTCVR = pCTR * pCVR (ESMM, AITM), ``counterfactual`` adds the IPS-weighted CVR risk
    (ESCM²); see :func:`lt4rec.train.loop.task_losses`.
    """

    name: str = ""
    cvr_objective: str | None = None

    @property
    def entire_space(self) -> bool:
        """True when the model's own CVR objective needs every row (not only clicked ones)."""
        return self.cvr_objective in ("entire_space", "counterfactual")

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__()
        self.cfg = cfg
        self.schema = schema

    def masks(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per-task 0/1 masks by layer name (empty for dense models)."""
        return {}

    def own_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """Parameters only ``task`` trains, by name: by convention every name with a
        ``.{task}.`` component (``towers.cvr.0.weight``, ``layers.1.bias.cvr``, ...), i.e.
        the entries of ``ModuleDict`` / ``ParameterDict`` keyed by task."""
        key = f".{task}."
        return {n: p for n, p in self.named_parameters() if key in f".{n}."}
