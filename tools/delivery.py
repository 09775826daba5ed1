"""Delivery reports of a confluent-kafka producer, shared by the tools that write records
(the simulator, the DLQ replay)."""

from __future__ import annotations

from typing import Any


class DeliveryReport:
    """The producer's ``on_delivery`` callback: counts delivered records, keeps the errors."""

    def __init__(self) -> None:
        self.delivered = 0
        self.errors: list[str] = []

    def __call__(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.delivered += 1
