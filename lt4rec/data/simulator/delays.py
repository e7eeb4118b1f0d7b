"""Click / conversion events, their delays, and the labels under the window rules.

* click delay: seconds to minutes (log-normal, median ~20 s), plus a small slow mode (median
  ~2 h) so that ~2-3 % of clicks land outside the 1 h click window and the rule matters;
* conversion delay after the click: heavy-tailed — a fast mode (median ~10 min) and a slow
  mode (median ~1.5 days) so a few percent fall beyond the 7-day attribution window.

With ``cfg.delay_dependence > 0`` the share of the slow conversion mode depends on the
video: log-odds ``logit(0.3) + delay_dependence * z`` with ``z`` the standardised log
duration (long videos convert later), so which conversions arrive late depends on features.

Labels follow exactly the joiner's rules (``docs/design/streamer.md``): click = 1 iff
``0 <= click_ts - ts <= click_window_s``; conversion = 1 iff click = 1 and
``0 <= conversion_ts - click_ts <= attribution_window_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lt4rec.config.data import SimConfig

_SLOW_CLICK = 0.03
_SLOW_CONVERSION = 0.3


@dataclass(frozen=True)
class Events:
    click_ts: np.ndarray  # [N] int64 ms, valid where has_click
    has_click: np.ndarray  # [N] bool: a click event happened (any delay)
    conversion_ts: np.ndarray  # [N] int64 ms, valid where has_conversion
    has_conversion: np.ndarray  # [N] bool: a conversion event happened (after a click event)
    click: np.ndarray  # [N] int64 label under the click window
    conversion: np.ndarray  # [N] int64 label under the attribution window


def _lognormal_mix(
    rng: np.random.Generator,
    n: int,
    slow_frac: float | np.ndarray,
    fast: tuple[float, float],
    slow: tuple[float, float],
) -> np.ndarray:
    """Delays in ms; ``fast`` / ``slow`` = (median seconds, sigma)."""
    slow_mask = rng.random(n) < slow_frac
    z = rng.normal(size=n)
    med = np.where(slow_mask, slow[0], fast[0])
    sig = np.where(slow_mask, slow[1], fast[1])
    seconds = med * np.exp(sig * z)
    return np.maximum(np.round(seconds * 1000.0), 0).astype(np.int64)


def slow_conversion_share(cfg: SimConfig, duration_s: np.ndarray) -> float | np.ndarray:
    """P(slow conversion mode) per impression [N] (a scalar when it does not depend on x)."""
    if cfg.delay_dependence == 0:
        return _SLOW_CONVERSION
    z = np.log(duration_s)
    z = (z - z.mean()) / max(float(z.std()), 1e-9)
    base = np.log(_SLOW_CONVERSION / (1 - _SLOW_CONVERSION))
    return 1.0 / (1.0 + np.exp(-(base + cfg.delay_dependence * z)))


def draw_events(
    cfg: SimConfig,
    ts: np.ndarray,
    p_click: np.ndarray,
    p_conversion: np.ndarray,
    rng: np.random.Generator,
    slow_conversion: float | np.ndarray = _SLOW_CONVERSION,
) -> Events:
    """Bernoulli events from the true probabilities, delays, then the window labels.

    ``slow_conversion``: P(slow conversion mode), a scalar or one per impression [N]."""
    n = ts.shape[0]
    has_click = rng.random(n) < p_click
    has_conv = has_click & (rng.random(n) < p_conversion)
    click_delay = _lognormal_mix(rng, n, _SLOW_CLICK, (20.0, 1.2), (7200.0, 1.0))
    conv_delay = _lognormal_mix(rng, n, slow_conversion, (600.0, 1.5), (129_600.0, 1.2))
    click_ts = ts + click_delay
    conversion_ts = click_ts + conv_delay
    click = has_click & (click_delay <= cfg.click_window_s * 1000)
    conversion = click & has_conv & (conv_delay <= cfg.attribution_window_s * 1000)
    return Events(
        click_ts=click_ts,
        has_click=has_click,
        conversion_ts=conversion_ts,
        has_conversion=has_conv,
        click=click.astype(np.int64),
        conversion=conversion.astype(np.int64),
    )
