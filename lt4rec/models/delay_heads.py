"""ES-DFM's auxiliary heads: P(delayed positive | x) and P(true negative | observed negative, x).

Yang et al. 2021, "Capturing Delayed Feedback in Conversion Rate Prediction via Elapsed-Time
Sampling" (AAAI), Section 4.3; the reference trains them as one separate network with two
logits (github.com/ThyrixYang/es_dfm, ``src/models.py`` ``MLP_tn_dp``). Here one small
network (own hashed embeddings, so frozen heads do not drift with the main model's
embeddings, and an MLP) gives both logits for every target it was built for (``ctr``,
``cvr`` and / or ``ctcvr``, see :mod:`lt4rec.train.feedback_rows`):

* ``{target}_dp`` — the logit of P(this impression's first observation of the target will
  be followed by a delayed positive);
* ``{target}_tn`` — the logit of P(the label is truly 0 | the first observation said 0).

Fit, losses and IO live in :mod:`lt4rec.train.heads_fit` and :mod:`lt4rec.train.es_dfm`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lt4rec.data.batch import Batch, FieldSchema
from lt4rec.models.blocks import EmbeddingBlock, mlp

HEAD_KINDS = ("dp", "tn")
HEAD_TARGETS = ("ctr", "cvr", "ctcvr")


class DelayHeads(nn.Module):
    """Embeddings -> MLP -> ``{f"{target}_{dp|tn}": logits [B]}``."""

    def __init__(
        self,
        schema: FieldSchema,
        targets: Sequence[str] = ("ctr", "cvr"),
        embedding_dim: int = 8,
        hidden: Sequence[int] = (64, 32),
    ) -> None:
        super().__init__()
        unknown = [t for t in targets if t not in HEAD_TARGETS]
        if unknown or not targets or len(set(targets)) != len(targets):
            raise ValueError(f"heads targets must be distinct names of {HEAD_TARGETS}: {targets}")
        self.schema = schema
        self.targets = tuple(targets)
        self.outputs = tuple(f"{t}_{k}" for t in self.targets for k in HEAD_KINDS)
        self.embeddings = EmbeddingBlock(schema, embedding_dim)
        self.mlp = mlp(self.embeddings.out_dim, tuple(hidden), out_dim=len(self.outputs))

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        z = self.mlp(self.embeddings(batch))  # [B, 2 * n_targets]
        return {name: z[:, i] for i, name in enumerate(self.outputs)}

    @torch.no_grad()
    def probs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Probabilities of every output in eval mode (the module's mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            return {k: torch.sigmoid(v.float()) for k, v in self(batch).items()}
        finally:
            self.train(was_training)
