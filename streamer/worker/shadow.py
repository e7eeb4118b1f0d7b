"""Online publishing: the worker's fresh versions reach the servers when they score no worse.

Every ``publish.online_every_s`` seconds (at the next checkpoint) the worker may publish its
newest ``online`` version, so serving is minutes fresh rather than a re-prune old. The gate is
**shadow scoring** on the live stream: the *champion* — the version in service
(``Registry.current``), loaded once per publication — scores every trained micro-batch next
to the worker's own progressive scores (both before the worker's update on those rows, so
neither has seen the labels), over the last ``worker.metrics_window`` rows per task. The
candidate is published when at least ``publish.online_min_rows`` CTR rows were compared and,
for each task with both classes in the window, its AUC is not below the champion's by more
than ``publish.online_eps``. Then the candidate's weights become the champion and the window
starts again (the comparison is always against what serves now).

The champion is encoded with its own feature spec (a re-pruned version may hash and normalise
differently from the worker's lineage); a micro-batch it would encode differently (an example
its spec refuses) is left out of the comparison. Scoring costs one extra forward pass per
micro-batch on the training thread while ``online_every_s > 0``. A failed publication (no
broker for the notice) keeps the registry publication (the notice stays pending and is re-sent
by the next publisher) and never stops training.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from checkpoints import Notice, Registry, VersionInfo, verify
from lt4rec.config import AppConfig
from lt4rec.metrics import auc
from lt4rec.models.blocks import MultiTaskModel
from streamer.worker.batching import Cut
from streamer.worker.encode import ExampleEncoder
from streamer.worker.holder import ModelHolder, StepResult
from streamer.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)
TASKS = ("ctr", "cvr")

Announce = Callable[[int, str], Notice]  # (version, reason) -> the published notice


class ScoreWindow:
    """The last ``size`` rows of (champion score, candidate score, label) of one task."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._chunks: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()
        self.rows = 0

    def add(self, champ: np.ndarray, cand: np.ndarray, y: np.ndarray) -> None:
        if not len(y):
            return
        self._chunks.append((champ, cand, y))
        self.rows += len(y)
        while self.rows - len(self._chunks[0][2]) >= self.size:
            self.rows -= len(self._chunks.popleft()[2])

    def aucs(self) -> tuple[float, float]:
        """(champion AUC, candidate AUC) over the window; NaN without both classes."""
        if not self._chunks:
            return float("nan"), float("nan")
        champ, cand, y = (np.concatenate(c)[-self.size :] for c in zip(*self._chunks, strict=True))
        if y.min() == y.max():
            return float("nan"), float("nan")
        return auc(champ, y), auc(cand, y)

    def clear(self) -> None:
        self._chunks.clear()
        self.rows = 0


@dataclass
class Champion:
    """The version in service as the shadow scorer needs it: weights and encoder only."""

    model: MultiTaskModel
    encoder: ExampleEncoder
    version: int


class ShadowPublisher:
    """Shadow-scores the champion and publishes the worker's online versions (module doc)."""

    def __init__(
        self, cfg: AppConfig, registry: Registry, metrics: WorkerMetrics, announce: Announce
    ) -> None:
        self.cfg, self.registry, self.metrics, self.announce = cfg, registry, metrics, announce
        self.windows = {t: ScoreWindow(cfg.worker.metrics_window) for t in TASKS}
        self.champion: Champion | None = None
        self.champion_version: int | None = None
        self.last_attempt = time.monotonic()
        self.published: list[dict[str, object]] = []  # what the summary reports
        self._followed = False

    # ---- training thread, after every step -------------------------------------------
    def observe(self, cut: Cut, result: StepResult | None, holder: ModelHolder) -> None:
        """Score ``cut``'s rows with the champion next to the candidate's ``result.scores``."""
        if not self._followed:  # the version in service at start: compare from the first row
            self._followed = True
            self._follow_champion(holder)
        champ = self.champion
        if champ is None or result is None or not result.scores or cut.encoded is None:
            return
        _, batch, _ = cut.encoded
        if batch is None:
            return
        if champ.encoder is not holder.encoder:  # its own spec: same rows, or leave it out
            cb, _, kept, bad = champ.encoder.encode_valid(cut.examples)
            if bad or cb is None or len(kept) != len(batch):
                return
            batch = cb
        batch = batch.to(next(champ.model.parameters()).device)
        with torch.no_grad():
            logits = champ.model(batch)  # {task: [B]}
        clicked = batch.click > 0
        for t, (p, y) in result.scores.items():
            z = logits["ctr"] if t == "ctr" else logits["cvr"][clicked]  # CVR: clicked rows
            cp = torch.sigmoid(z).float().cpu().numpy()
            if len(cp) == len(p):
                self.windows[t].add(cp, p.float().cpu().numpy(), y.float().cpu().numpy())

    # ---- training thread, after every checkpoint ---------------------------------------
    def on_checkpoint(self, info: VersionInfo, holder: ModelHolder) -> None:
        """Follow the publication in service; publish ``info`` when due and no worse."""
        self._follow_champion(holder)
        every = self.cfg.publish.online_every_s
        if every <= 0 or time.monotonic() - self.last_attempt < every:
            return
        self.last_attempt = time.monotonic()
        verdict = self.verdict()
        if verdict is None:
            return
        ok, why = verdict
        if not ok:
            log.info("online version %d not published: %s", info.version, why)
            return
        try:
            self.announce(info.version, f"online: {why}")
        except Exception as exc:  # the registry row may be in; its notice stays pending
            log.error("publishing online version %d: %s", info.version, exc)
            return
        self.metrics.published.inc()
        self.published.append({"version": info.version, "at": time.time(), "why": why})
        log.warning("published online version %d (%s)", info.version, why)
        model = copy.deepcopy(holder.model).eval()  # weights only: no optimiser state
        self._set_champion(Champion(model, holder.encoder, info.version), info.version)

    def verdict(self) -> tuple[bool, str] | None:
        """(publish?, why) over the windows; None while too few rows were compared."""
        p = self.cfg.publish
        if self.champion is None:
            return (True, "no version in service") if self.champion_version is None else None
        if self.windows["ctr"].rows < max(1, p.online_min_rows):
            return None
        parts, ok = [], True
        for t in TASKS:
            champ, cand = self.windows[t].aucs()
            if np.isnan(champ):
                continue
            parts.append(f"{t} AUC {cand:.4f} vs {champ:.4f} in service")
            ok = ok and cand >= champ - p.online_eps
        if not parts:
            return None
        rows = self.windows["ctr"].rows
        return ok, f"{', '.join(parts)} on {rows} shadow-scored rows"

    def _follow_champion(self, holder: ModelHolder) -> None:
        pub = self.registry.current()
        version = None if pub is None else pub.version.version
        if version == self.champion_version:
            return
        if pub is None:
            self._set_champion(None, None)
            return
        assert version is not None
        try:
            loaded = ModelHolder.from_checkpoint(verify(pub.version), self.cfg, version)
        except Exception as exc:  # a version the servers refuse too: compare with nothing
            log.error("cannot load version %d in service for shadow scoring: %s", version, exc)
            self._set_champion(None, version)
            return
        encoder = loaded.encoder
        mine = holder.encoder
        if (encoder.spec.to_dict(), encoder.normalizer.to_dict(), encoder.data_cfg) == (
            mine.spec.to_dict(),
            mine.normalizer.to_dict(),
            mine.data_cfg,
        ):
            encoder = holder.encoder  # the same encoding: reuse the batch
        model = loaded.model.to(next(holder.model.parameters()).device).eval()
        self._set_champion(Champion(model, encoder, version), version)

    def _set_champion(self, champ: Champion | None, version: int | None) -> None:
        self.champion, self.champion_version = champ, version
        for w in self.windows.values():
            w.clear()
