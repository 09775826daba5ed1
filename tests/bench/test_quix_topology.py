"""The Quix topology's stateful steps, with a dict standing in for Quix's per-key State."""

from __future__ import annotations

from bench.quix_topology import count_hour, count_zip, fraud_alert

HOUR_MS = 3_600_000


class DictState:
    """Quix's ``State`` interface as these steps use it: ``get(key, default)`` and ``set``."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def get(self, key, default=None):
        return self.values.get(key, default)

    def set(self, key, value) -> None:
        self.values[key] = value


def test_count_zip_is_a_running_count_with_the_latest_event_time():
    state = DictState()
    first = count_zip({"zip_code": "10001", "event_time": 2_000}, state)
    second = count_zip({"zip_code": "10001", "event_time": 1_000}, state)
    assert (first["count"], second["count"]) == (1, 2)
    assert second["last_event_time"] == 2_000


def test_fraud_alert_fires_once_on_the_view_that_crosses_the_threshold():
    state = DictState()
    view = {"user_id": "BOT001", "event_time": 5 * 600_000 + 1}
    alerts = [fraud_alert(view, state) for _ in range(60)]
    fired = [a for a in alerts if a is not None]
    assert len(fired) == 1 and alerts[50] is not None
    assert fired[0]["alert_id"] == f"BOT001:{5 * 600_000}" and fired[0]["view_count"] == 51


def test_count_hour_counts_each_hour_of_a_property_apart():
    state = DictState()
    a = count_hour({"property_id": "P1", "event_time": HOUR_MS + 5}, state)
    b = count_hour({"property_id": "P1", "event_time": 2 * HOUR_MS + 5}, state)
    c = count_hour({"property_id": "P1", "event_time": HOUR_MS + 9}, state)
    assert (a["view_count"], b["view_count"], c["view_count"]) == (1, 1, 2)
    assert (c["window_start"], c["window_end"]) == (HOUR_MS, 2 * HOUR_MS)
