"""The prediction server's ASGI application (Starlette).

Endpoints: ``POST /predict``, ``GET /healthz``, ``GET /model``, ``GET /metrics`` (see
docs/serving.md). Scoring runs on the event loop thread: one request is a few hundred µs
of CPU (bounded by the request limits), less than a hand-over to a thread pool would cost,
and the model reference is read once per request (:class:`~streamer.serve.swap.ModelSlot`).
Every refusal is a JSON ``{"error": reason}`` with a 4xx status (503 while no model is
loaded yet); an unexpected exception is logged and answered 500 without killing the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import torch
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from lt4rec.config import AppConfig, ServeConfig
from streamer.serve.instances import RequestError, parse_instances
from streamer.serve.metrics import ServeMetrics
from streamer.serve.swap import ModelFollowerThread, ModelSlot

log = logging.getLogger(__name__)
CONFIG_ENV = "LT4REC_SERVE_CONFIG"  # the effective config (JSON) handed to --workers processes
JSON = "application/json"


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError(400, "bad_request", "invalid Content-Length")
        if int(length) > limit:
            raise RequestError(413, "body_too_large", f"body of {length} bytes, at most {limit}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, "body_too_large", f"body over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise RequestError(400, "disconnected", "client disconnected") from exc
    return b"".join(chunks)


class Handlers:
    """The endpoints, bound to one process's model slot and metrics."""

    def __init__(self, cfg: ServeConfig, slot: ModelSlot, metrics: ServeMetrics) -> None:
        self.cfg = cfg
        self.slot = slot
        self.metrics = metrics
        self._ok = metrics.requests.labels(endpoint="/predict", code="200")

    def refuse(self, endpoint: str, exc: RequestError) -> Response:
        self.metrics.requests.labels(endpoint=endpoint, code=str(exc.status)).inc()
        self.metrics.refused.labels(reason=exc.kind).inc()
        return _json({"error": exc.reason}, exc.status)

    async def predict(self, request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            body = await read_body(request, self.cfg.max_body_bytes)
            instances = parse_instances(body, self.cfg.max_instances)
            model = self.slot.current  # read once: this request uses this version throughout
            if model is None:
                raise RequestError(503, "no_model", "no model version is loaded yet")
            out = model.predict(instances)
        except RequestError as exc:
            return self.refuse("/predict", exc)
        except Exception:
            log.exception("internal error in /predict")
            self.metrics.requests.labels(endpoint="/predict", code="500").inc()
            return _json({"error": "internal error"}, 500)
        response = _json(out)
        self._ok.inc()
        self.metrics.instances.inc(len(instances))
        self.metrics.latency.observe(time.perf_counter() - t0)
        return response

    async def healthz(self, _request: Request) -> Response:
        model = self.slot.current
        if model is None:
            return _json({"status": "starting", "model_version": None, "pid": os.getpid()}, 503)
        return _json({"status": "ok", "model_version": model.version, "pid": os.getpid()})

    async def model(self, _request: Request) -> Response:
        model = self.slot.current
        return _json(
            {
                "serving": model.info.to_dict() if model is not None else None,
                "previous": self.slot.previous.version if self.slot.previous else None,
                "swaps": self.slot.swaps,
                "last_error": self.slot.last_error,
                "pid": os.getpid(),
            }
        )

    async def metrics_endpoint(self, _request: Request) -> Response:
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)


def create_app(cfg: AppConfig, slot: ModelSlot | None = None, follow: bool = True) -> Starlette:
    """The application; ``follow`` starts the model follower thread with the lifespan.

    Tests pass their own ``slot`` (and ``follow=False``) to serve a model without Kafka.
    """
    metrics = slot.metrics if slot is not None else ServeMetrics()
    slot = slot if slot is not None else ModelSlot(cfg.serve, metrics)
    handlers = Handlers(cfg.serve, slot, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        torch.set_num_threads(cfg.serve.threads)
        thread = ModelFollowerThread(cfg, slot) if follow else None
        if thread is not None:
            thread.start()
        try:
            yield
        finally:
            if thread is not None:
                thread.stop()

    app = Starlette(
        routes=[
            Route("/predict", handlers.predict, methods=["POST"]),
            Route("/healthz", handlers.healthz, methods=["GET"]),
            Route("/model", handlers.model, methods=["GET"]),
            Route("/metrics", handlers.metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.slot = slot
    return app


def app_from_env() -> Starlette:
    """Factory of the ``--workers`` processes: the config comes in :data:`CONFIG_ENV`."""
    from lt4rec.config.loader import build

    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise RuntimeError(f"{CONFIG_ENV} is not set (start the server with `lt4rec serve`)")
    return create_app(build(AppConfig, orjson.loads(raw)))
