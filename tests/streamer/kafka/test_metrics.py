"""Joiner metrics: counters by label, gauges, the HTTP endpoint and the progress line."""

from __future__ import annotations

import io
import socket
import time
import urllib.request

from lt4rec.config import MetricsConfig
from streamer.metrics import JoinerMetrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _value(m: JoinerMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_counters_and_gauges() -> None:
    m = JoinerMetrics(MetricsConfig(), stream=io.StringIO())
    m.count_in({"impression": 3, "click": 1, "invalid": 2, "conversion": 0})
    m.count_examples(["final", "final", "delayed_positive"])
    m.count_dlq(["bad_json", "bad_json", "late_click"])
    m.count_archive(7)
    m.set_pending(42)
    m.set_watermark(1, int(time.time() * 1000) - 60_000)
    m.set_watermark(2, None)  # undefined watermark: no sample
    m.set_consumer_lag({("t", 0): 5, ("t", 1): 2})
    assert _value(m, "lt4rec_joiner_events_in_total", type="impression") == 3
    assert _value(m, "lt4rec_joiner_events_in_total", type="invalid") == 2
    assert _value(m, "lt4rec_joiner_events_in_total", type="conversion") is None
    assert _value(m, "lt4rec_joiner_examples_out_total", kind="final") == 2
    assert _value(m, "lt4rec_joiner_examples_out_total", kind="delayed_positive") == 1
    assert _value(m, "lt4rec_joiner_dlq_total", reason="bad_json") == 2
    assert _value(m, "lt4rec_joiner_archive_rows_total") == 7
    assert _value(m, "lt4rec_joiner_pending") == 42
    lag = _value(m, "lt4rec_joiner_watermark_lag_seconds", partition="1")
    assert lag is not None and 59 <= lag <= 120
    assert _value(m, "lt4rec_joiner_watermark_lag_seconds", partition="2") is None
    assert _value(m, "lt4rec_joiner_consumer_lag", topic="t", partition="0") == 5
    assert m.lag_total == 7


def test_progress_line_goes_to_the_stream_on_schedule() -> None:
    out = io.StringIO()
    m = JoinerMetrics(MetricsConfig(progress_interval_s=0.05), stream=out)
    assert not m.progress_due()
    time.sleep(0.06)
    assert m.progress_due()
    m.count_in({"impression": 10})
    line = m.progress([0, 3])
    assert out.getvalue() == line + "\n"
    assert "partitions=[0, 3]" in line and "in=10" in line
    assert not m.progress_due()
    assert not JoinerMetrics(MetricsConfig(progress_interval_s=0)).progress_due()


def test_http_endpoint_serves_the_registry() -> None:
    port = _free_port()
    m = JoinerMetrics(MetricsConfig(port=port))
    assert m.serve() == port
    try:
        m.count_dlq(["oversize"])
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'lt4rec_joiner_dlq_total{reason="oversize"} 1.0' in body
    finally:
        m.close()
    assert JoinerMetrics(MetricsConfig(port=0)).serve() == 0
