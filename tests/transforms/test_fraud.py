"""DetectExcessiveViewing: one alert per (user, window), on the 51st view, never twice."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from tests.transforms.event_records import at, streaming_test_pipeline, ts, view
from transforms.event_time import to_epoch_ms
from transforms.fraud import DetectExcessiveViewing, alert, crosses_threshold
from transforms.metrics import ALERTS, NAMESPACE


def views(user_id: str, minutes: list[float], first_offset: int = 0):
    return [
        beam.window.TimestampedValue(
            view(at(m), user_id=user_id, offset=first_offset + i), ts(at(m))
        )
        for i, m in enumerate(minutes)
    ]


def spread(n: int, start_min: float, end_min: float) -> list[float]:
    """``n`` view times evenly inside [start_min, end_min)."""
    return [start_min + (end_min - start_min) * i / n for i in range(n)]


def with_timestamp(element, timestamp=beam.DoFn.TimestampParam):
    return element["alert_id"], element["view_count"], to_epoch_ms(timestamp)


def test_only_the_view_that_crosses_the_threshold_triggers():
    assert not crosses_threshold(49, 50, 50)
    assert crosses_threshold(50, 51, 50)
    assert not crosses_threshold(51, 52, 50)


def test_alert_fires_on_the_51st_view_not_at_window_end_and_never_again():
    first_50 = spread(50, 0, 5)  # 00:00-00:05, window [00:00, 00:10)
    stream = (
        TestStream()
        .advance_watermark_to(ts(at(0)))
        .add_elements(views("u1", first_50))
        .advance_watermark_to(ts(at(5)))  # 50 views: nothing yet
        .add_elements(views("u1", [6], first_offset=50))  # the 51st view, on time
        .add_elements(views("u1", spread(10, 7, 9), first_offset=51))  # more views: no 2nd alert
        .advance_watermark_to(ts(at(20)))  # window closed
        # late but allowed views of the same window (a late pane in a windowed count): no alert
        .add_elements(views("u1", spread(60, 0, 10), first_offset=61))
        # the same 51 views delivered again (a replay inside the pipeline): no alert
        .add_elements(views("u1", [*first_50, 6]))
        .advance_watermark_to_infinity()
    )
    p = streaming_test_pipeline()
    alerts = p | "Views" >> stream | DetectExcessiveViewing()
    assert_that(
        alerts,
        equal_to([alert("u1", at(0), at(10), 51, 50)]),
        label="OneAlert",
    )
    # Emitted with the 51st view's timestamp (00:06): it fired on that view, before the window
    # end, and counted 51 — an end-of-window firing would have counted 61.
    assert_that(
        alerts | "WithTimestamp" >> beam.Map(with_timestamp),
        equal_to([("u1:" + str(at(0)), 51, at(6))]),
        label="EarlyFiring",
    )
    p.run().wait_until_finish()


def test_a_window_crossing_the_threshold_with_late_views_alerts_once():
    stream = (
        TestStream()
        .advance_watermark_to(ts(at(0)))
        .add_elements(views("u1", spread(40, 0, 10)))  # 40 on time: the ON_TIME pane, no alert
        .advance_watermark_to(ts(at(30)))  # window [00:00, 00:10) fired; within its lateness
        .add_elements(views("u1", spread(11, 0, 10), first_offset=40))  # late: 51 in all
        .add_elements(views("u1", spread(5, 0, 10), first_offset=51))  # later still: no 2nd alert
        .advance_watermark_to_infinity()
    )
    with streaming_test_pipeline() as p:
        alerts = p | "Views" >> stream | DetectExcessiveViewing()
        assert_that(alerts, equal_to([alert("u1", at(0), at(10), 51, 50)]), label="OneLateAlert")


def test_each_window_and_each_user_alerts_separately_and_fifty_views_do_not_alert():
    stream = (
        TestStream()
        .add_elements(views("u1", spread(51, 0, 10)))  # window [00:00, 00:10): alert
        .add_elements(views("u1", spread(51, 10, 20), first_offset=51))  # [00:10, 00:20): alert
        .add_elements(views("u2", spread(50, 0, 10)))  # exactly 50: no alert
        .add_elements(views("u3", spread(30, 5, 10) + spread(30, 10, 15)))  # 60, split: no alert
        .advance_watermark_to_infinity()
    )
    with streaming_test_pipeline() as p:
        alerts = p | "Views" >> stream | DetectExcessiveViewing()
        assert_that(
            alerts,
            equal_to([alert("u1", at(0), at(10), 51, 50), alert("u1", at(10), at(20), 51, 50)]),
            label="Alerts",
        )


def test_alerts_counter_counts_one_per_alerting_window():
    # The streaming DirectRunner reports no metrics; the batch runner does.
    p = TestPipeline()
    alerts = (
        p
        | "Views" >> beam.Create(views("u1", spread(70, 0, 10)) + views("u2", spread(51, 0, 10)))
        | DetectExcessiveViewing()
    )
    assert_that(alerts | "Users" >> beam.Map(lambda a: a["user_id"]), equal_to(["u1", "u2"]))
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(ALERTS))[
        "counters"
    ]
    assert sum(c.committed for c in counters) == 2


def test_alert_ids_are_deterministic_user_and_window_start():
    assert alert("u1", at(0), at(10), 51, 50)["alert_id"] == f"u1:{at(0)}"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": -1}, "threshold"),
        ({"window_s": 0}, "window_s"),
        ({"allowed_lateness_s": -5}, "allowed_lateness_s"),
    ],
)
def test_invalid_parameters_are_rejected_with_the_parameter_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DetectExcessiveViewing(**kwargs)


def test_without_early_alerts_the_same_alert_comes_with_the_window_end_pane():
    stream = (
        TestStream()
        .advance_watermark_to(ts(at(0)))
        .add_elements(views("u1", spread(50, 0, 5)))
        .add_elements(views("u1", [6], first_offset=50))  # the 51st view
        .add_elements(views("u1", spread(10, 7, 9), first_offset=51))
        .add_elements(views("u2", spread(50, 0, 10)))  # exactly 50: no alert
        .advance_watermark_to(ts(at(20)))  # window closed
        .add_elements(views("u1", spread(5, 0, 10), first_offset=61))  # late: no 2nd alert
        .advance_watermark_to_infinity()
    )
    p = streaming_test_pipeline()
    alerts = p | "Views" >> stream | DetectExcessiveViewing(early_alerts=False)
    assert_that(alerts, equal_to([alert("u1", at(0), at(10), 51, 50)]), label="OneAlert")
    # No early pane: the ON_TIME pane at the window end, stamped with its latest view (00:08.8).
    assert_that(
        alerts | "WithTimestamp" >> beam.Map(with_timestamp),
        equal_to([("u1:" + str(at(0)), 51, at(8.8))]),
        label="OnTimeFiring",
    )
    p.run().wait_until_finish()


def test_without_early_alerts_a_batch_alerts_as_with_them():
    inputs = views("u1", spread(70, 0, 10)) + views("u2", spread(51, 0, 10))
    inputs += views("u3", spread(50, 0, 10)) + views("u1", spread(51, 10, 20), first_offset=70)
    with TestPipeline() as p:
        created = p | "Views" >> beam.Create(inputs)
        early = created | "Early" >> DetectExcessiveViewing()
        summed = created | "Summed" >> DetectExcessiveViewing(early_alerts=False)
        expected = [
            alert("u1", at(0), at(10), 51, 50),
            alert("u1", at(10), at(20), 51, 50),
            alert("u2", at(0), at(10), 51, 50),
        ]
        assert_that(early, equal_to(expected), label="EarlyAlerts")
        assert_that(summed, equal_to(expected), label="SummedAlerts")
