"""Fixtures of the transform tests that need a real service: the market-data HTTP service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runners.marketdata.processes import MarketDataServer, market_data_server


@pytest.fixture(scope="module")
def running_service() -> Iterator[MarketDataServer]:
    """One market-data service per test module, on a free loopback port."""
    with market_data_server() as server:
        yield server


@pytest.fixture
def service(running_service: MarketDataServer) -> MarketDataServer:
    """The module's server, reset to the state of a fresh one: default faults, fault draws
    reseeded, and statistics that count only requests made from now on (an earlier test's slow
    call answered late is not counted: that leak made the exact call counts flaky)."""
    running_service.reset()
    return running_service
