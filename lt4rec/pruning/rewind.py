"""Start joint training from the tickets' rewind point (step k), not from the initial weights.

A lottery ticket is the pair (mask, weights at rewind step k): :func:`find_ticket` retrains
every pruned round from step k, so the mask was found for *those* weights. The joint phase
of sparse sharing trains all tasks together on one shared ``W``, so the per-task step-k
states are merged into one starting state:

* a masked weight entry kept by one or more tasks' masks takes the mean of those tasks'
  step-k values (an entry no task keeps stays at its initial value; it is never used);
* a task's own parameters (``layers.{i}.bias.{task}``, ``head.*.{task}``) come from that
  task's state;
* everything else (the shared embedding tables) comes from ``primary``'s state (CTR: it saw
  every row during its k steps, CVR only the clicked ones), or with ``primary=None`` is the
  mean of all tasks' states.

Tasks without a ``rewind_state`` (``prune.rewind = "init"``) contribute their initial values.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lt4rec.pruning.imp import Ticket


def _mean(values: list[torch.Tensor]) -> torch.Tensor:
    if not values[0].is_floating_point():
        return values[0].detach().clone()  # integer buffers (e.g. offsets) are not averaged
    return torch.stack(values).mean(0)


def merge_rewind_states(
    init_state: Mapping[str, torch.Tensor],
    tickets: Mapping[str, Ticket],
    primary: str | None = "ctr",
) -> dict[str, torch.Tensor]:
    """One model state from the tickets' step-k states (see module docstring).

    ``init_state`` is the model's state dict at initialisation (every key of the result);
    each ticket's ``mask`` names the masked weights (``layers.{i}.weight`` -> 0/1 [out, in]).
    """
    states = {t: (k.rewind_state or dict(init_state)) for t, k in tickets.items()}
    for t, st in states.items():
        missing = sorted(set(init_state) - set(st))
        if missing:
            raise KeyError(f"rewind state of {t!r} lacks {', '.join(missing)}")
    if primary is None and states:  # mean of every task's state (float tensors)
        out = {n: _mean([st[n] for st in states.values()]) for n in init_state}
    else:
        base = states.get(primary or "", dict(init_state))
        out = {n: base[n].detach().clone() for n in init_state}
    masked = set().union(*(set(k.mask) for k in tickets.values())) if tickets else set()
    for name in masked:
        total = torch.zeros_like(init_state[name])  # [out, in]
        count = torch.zeros_like(init_state[name])  # [out, in]
        for t, k in tickets.items():
            if name not in k.mask:
                continue
            m = k.mask[name].to(total.dtype)  # [out, in]
            total += m * states[t][name]
            count += m
        out[name] = torch.where(count > 0, total / count.clamp(min=1), init_state[name])
    for t in tickets:
        for n in init_state:
            if f".{t}." in f".{n}.":  # the task's own parameters (biases, own output layer)
                out[n] = states[t][n].detach().clone()
    return out
