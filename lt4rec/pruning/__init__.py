"""Lottery-ticket pruning: masks, magnitude pruning and per-task IMP with rewinding."""

from lt4rec.pruning.imp import RoundResult, Ticket, find_ticket
from lt4rec.pruning.mask import Mask
from lt4rec.pruning.prune import prune

__all__ = ["Mask", "RoundResult", "Ticket", "find_ticket", "prune"]
