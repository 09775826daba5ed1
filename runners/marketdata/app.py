"""The market-data HTTP service (Starlette ASGI app): the "vendor API" the enrichment calls.

Endpoints:
- ``GET /v1/market?zip=<5 digits>&type=<PropertyType>`` → 200 with the ``(zip, type)`` record of
  the seeded dataset (see ``dataset.py``); 400 when a parameter is missing; 404 (JSON body with
  ``error``) when the zip or the type is unknown.
- ``POST /v1/market/batch`` with ``{"keys": [{"zip": ..., "type": ...}, ...]}`` (1 to
  ``MAX_BATCH`` keys) → 200 ``{"results": [...]}``, one per key in order: ``{"zip", "type",
  "status": 200, "data": <record>}`` or ``{"zip", "type", "status": 404, "error": ...}``; 400 for
  a bad body. Faults apply once per batch request (one latency, one token, one error draw).
- ``GET /healthz`` → 200 ``{"status": "ok", ...}`` while the process serves (also when the
  injected ``down`` fault is on: the process is alive, the API is not).
- ``GET /admin/faults`` / ``POST /admin/faults`` → read / change the injected faults of the
  running server (a JSON object with any of the ``Faults`` fields; omitted fields keep their value;
  ``{"reset": true}`` restores the defaults first). Unknown fields or bad values → 422.
- ``GET /admin/stats`` → how many API requests (``/v1/market`` and batches) that arrived since the
  last reset were answered, by status (``market_requests``, ``by_status``), and how many of them
  are still being answered (``in_flight``, e.g. sleeping an injected latency). A request counts
  in the statistics of the period it *arrived* in: one that arrived before a reset and is answered
  after it (a slow call a client gave up on) is not counted, so a test's counts are its own.
  ``POST /admin/stats/reset`` starts a new period with zero counts.
- ``POST /admin/reset`` → as good as a fresh process: default faults, the fault generator
  reseeded, a new statistics period. Tests that count requests call it before each test.

Faults apply to the API endpoints only, in this order: ``latency_ms`` (added before answering),
``down`` (503), ``rate_limit_rps`` (token bucket; over the rate → 429 with an integer
``Retry-After`` header), ``error_rate`` (that fraction of requests → 500), then the lookup, then
``malformed_rate`` (that fraction of 200 answers carry a truncated JSON body). The random draws
come from a ``random.Random`` seeded with the dataset seed (reseeded by ``/admin/reset``), so a
run is repeatable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runners.marketdata.dataset import MarketDataset

MAX_BATCH = 100


@dataclass
class Faults:
    """Injected faults. Defaults: a healthy service."""

    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit_rps: float | None = None  # None: no limit; 0: every request is rate limited
    retry_after_s: int = 1  # the Retry-After of a 429 when the bucket never refills (rps 0)
    down: bool = False
    malformed_rate: float = 0.0

    def validated(self) -> Faults:
        """Self, or ValueError naming the bad field."""
        if not isinstance(self.latency_ms, int) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be an int >= 0, got {self.latency_ms!r}")
        for name in ("error_rate", "malformed_rate"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if self.rate_limit_rps is not None and (
            not isinstance(self.rate_limit_rps, int | float) or self.rate_limit_rps < 0
        ):
            raise ValueError(f"rate_limit_rps must be null or >= 0, got {self.rate_limit_rps!r}")
        if not isinstance(self.retry_after_s, int) or self.retry_after_s < 0:
            raise ValueError(f"retry_after_s must be an int >= 0, got {self.retry_after_s!r}")
        if not isinstance(self.down, bool):
            raise ValueError(f"down must be true or false, got {self.down!r}")
        return self


class _TokenBucket:
    """``rps`` tokens a second, burst ``max(1, rps)``; ``take`` answers the wait when empty."""

    def __init__(self, rps: float) -> None:
        self.rps = rps
        self.capacity = max(1.0, rps)
        self.tokens = self.capacity if rps > 0 else 0.0
        self.updated = time.monotonic()

    def take(self) -> float | None:
        """None when a token was taken, else the seconds until the next one (inf if rps is 0)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rps)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return math.inf if self.rps == 0 else (1 - self.tokens) / self.rps


class MarketDataService:
    """The state of one server: dataset, faults, request statistics."""

    def __init__(self, dataset: MarketDataset, faults: Faults | None = None) -> None:
        self.dataset = dataset
        self.faults = (faults or Faults()).validated()
        self.rng = random.Random(dataset.seed)
        self.bucket = self._bucket_for(self.faults)
        # Statistics period: bumped by a reset; each request is counted in the period it arrived
        # in, so answers to requests from before a reset never leak into the new counts.
        self.period = 0
        self.stats: Counter[int] = Counter()
        self.in_flight = 0

    @staticmethod
    def _bucket_for(faults: Faults) -> _TokenBucket | None:
        return None if faults.rate_limit_rps is None else _TokenBucket(faults.rate_limit_rps)

    def new_period(self) -> None:
        """Zero the statistics; requests still in flight will not be counted."""
        self.period += 1
        self.stats.clear()
        self.in_flight = 0

    def reset(self) -> None:
        """Default faults, the fault generator reseeded, a new statistics period."""
        self.faults = Faults()
        self.bucket = None
        self.rng = random.Random(self.dataset.seed)
        self.new_period()

    async def _counted(
        self, request: Request, handler: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Runs an API ``handler``, counting its answer in the period the request arrived in."""
        period = self.period
        self.in_flight += 1
        try:
            response = await handler(request)
        finally:
            if period == self.period:
                self.in_flight -= 1
        if period == self.period:
            self.stats[response.status_code] += 1
        return response

    @staticmethod
    def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(body, status_code=status, headers=headers)

    async def market(self, request: Request) -> Response:
        return await self._counted(request, self._market)

    async def market_batch(self, request: Request) -> Response:
        return await self._counted(request, self._market_batch)

    async def _market(self, request: Request) -> Response:
        faults = self.faults
        if (faulted := await self._injected(faults)) is not None:
            return faulted
        zip_code = request.query_params.get("zip")
        property_type = request.query_params.get("type")
        if not zip_code or not property_type:
            return self._answer(400, {"error": "query parameters zip and type are required"})
        record = self.dataset.lookup(zip_code, property_type)
        if record is None:
            return self._answer(
                404, {"error": f"no market data for zip={zip_code} type={property_type}"}
            )
        if faults.malformed_rate and self.rng.random() < faults.malformed_rate:
            # A body cut short, as a broken proxy or a crashed vendor process would send.
            return Response('{"median_price": ', media_type="application/json")
        return self._answer(200, record)

    async def _injected(self, faults: Faults) -> Response | None:
        """Waits the injected latency, then returns the fault answer for this request if a fault
        fires. ``faults`` are those read when the request arrived, so a change during its latency
        does not apply."""
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.down:
            return self._answer(503, {"error": "service down (injected)"})
        if self.bucket is not None:
            wait_s = self.bucket.take()
            if wait_s is not None:
                retry_after = faults.retry_after_s if math.isinf(wait_s) else math.ceil(wait_s)
                return self._answer(
                    429, {"error": "rate limited"}, headers={"Retry-After": str(retry_after)}
                )
        if faults.error_rate and self.rng.random() < faults.error_rate:
            return self._answer(500, {"error": "internal error (injected)"})
        return None

    async def _market_batch(self, request: Request) -> Response:
        faults = self.faults
        if (faulted := await self._injected(faults)) is not None:
            return faulted
        try:
            body = await request.json()
        except ValueError:
            body = None
        keys = body.get("keys") if isinstance(body, dict) else None
        if (
            not isinstance(keys, list)
            or not 1 <= len(keys) <= MAX_BATCH
            or not all(isinstance(k, dict) and {"zip", "type"} <= set(k) for k in keys)
        ):
            return self._answer(
                400, {"error": f'body must be {{"keys": [{{"zip", "type"}}, ...]}}, 1..{MAX_BATCH}'}
            )
        results: list[dict[str, Any]] = []
        for key in keys:
            zip_code, property_type = str(key["zip"]), str(key["type"])
            record = self.dataset.lookup(zip_code, property_type)
            if record is None:
                error = f"no market data for zip={zip_code} type={property_type}"
                results.append(
                    {"zip": zip_code, "type": property_type, "status": 404, "error": error}
                )
            else:
                results.append(
                    {"zip": zip_code, "type": property_type, "status": 200, "data": record}
                )
        if faults.malformed_rate and self.rng.random() < faults.malformed_rate:
            return Response('{"results": [', media_type="application/json")
        return self._answer(200, {"results": results})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "seed": self.dataset.seed,
                "zip_count": self.dataset.zip_count,
                "faults": dataclasses.asdict(self.faults),
            }
        )

    async def get_faults(self, request: Request) -> Response:
        return JSONResponse(dataclasses.asdict(self.faults))

    async def post_faults(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be a JSON object"}, status_code=422)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=422)
        base = Faults() if body.pop("reset", False) else self.faults
        known = {f.name for f in dataclasses.fields(Faults)}
        unknown = sorted(set(body) - known)
        if unknown:
            return JSONResponse(
                {"error": f"unknown fault fields {unknown}; known: {sorted(known)}"},
                status_code=422,
            )
        try:
            faults = dataclasses.replace(base, **body).validated()
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        self.faults = faults
        self.bucket = self._bucket_for(faults)
        return JSONResponse(dataclasses.asdict(faults))

    async def get_stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "market_requests": sum(self.stats.values()),
                "by_status": {str(k): v for k, v in sorted(self.stats.items())},
                "in_flight": self.in_flight,
            }
        )

    async def reset_stats(self, request: Request) -> Response:
        self.new_period()
        return JSONResponse({"market_requests": 0, "by_status": {}, "in_flight": 0})

    async def post_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"faults": dataclasses.asdict(self.faults), "period": self.period})


def create_app(service: MarketDataService) -> Starlette:
    """The ASGI app serving ``service``."""
    return Starlette(
        routes=[
            Route("/v1/market", service.market, methods=["GET"]),
            Route("/v1/market/batch", service.market_batch, methods=["POST"]),
            Route("/healthz", service.healthz, methods=["GET"]),
            Route("/admin/faults", service.get_faults, methods=["GET"]),
            Route("/admin/faults", service.post_faults, methods=["POST"]),
            Route("/admin/stats", service.get_stats, methods=["GET"]),
            Route("/admin/stats/reset", service.reset_stats, methods=["POST"]),
            Route("/admin/reset", service.post_reset, methods=["POST"]),
        ]
    )
