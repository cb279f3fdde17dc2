"""Formatting NWS bodies: every field may be null or missing and nothing crashes."""

from __future__ import annotations

from typing import Any

import pytest

from secure_mcp.weather.formatting import (
    alerts_text,
    forecast_text,
    location_name,
    parse_alerts,
    parse_forecast,
)
from tests.support.nws_fixtures import ALERTS_HI, POINT_SGX, body

NULL_PERIOD = {
    "name": None,
    "startTime": None,
    "temperature": None,
    "temperatureUnit": None,
    "windSpeed": None,
    "windDirection": None,
    "probabilityOfPrecipitation": None,
    "shortForecast": None,
    "detailedForecast": None,
}


@pytest.mark.parametrize(
    "payload",
    [None, [], {"features": None}, {"features": {"a": 1}}, "text"],
    ids=["null", "list", "null-features", "features-object", "string"],
)
def test_odd_alert_bodies_mean_no_alerts(payload: Any) -> None:
    result = parse_alerts("CA", payload)
    assert result.count == 0
    assert alerts_text(result) == "No active weather alerts for CA."


def test_alert_with_every_field_null() -> None:
    feature = {"properties": dict.fromkeys(["event", "areaDesc", "severity", "description"])}
    result = parse_alerts("TX", {"features": [feature, {"properties": "odd"}, 3]})
    assert result.count == 3
    first = result.alerts[0]
    assert (first.event, first.area, first.severity) == ("Unknown event", "Unknown area", "Unknown")
    assert "Description: not given" in alerts_text(result)


def test_recorded_alert_fields() -> None:
    alert = parse_alerts("HI", body(ALERTS_HI)).alerts[3]
    assert alert.event == "Hurricane Warning"
    assert alert.severity == "Extreme"
    assert alert.instruction is None
    assert alert.ends is None


def test_period_with_every_field_null() -> None:
    result = parse_forecast(1.0, 2.0, None, {"properties": {"periods": [NULL_PERIOD, "x"]}})
    (period,) = result.periods
    assert period.name == "Unnamed period"
    assert period.temperature is None
    assert forecast_text(result) == (
        "Forecast for 1.0000, 2.0000:\nUnnamed period: not given, wind not given. not given"
    )


def test_boolean_temperature_is_not_a_number() -> None:
    period = {**NULL_PERIOD, "name": "Tonight", "temperature": True, "shortForecast": "Clear"}
    result = parse_forecast(1.0, 2.0, "Here", {"properties": {"periods": [period]}})
    assert forecast_text(result) == "Forecast for Here:\nTonight: not given, wind not given. Clear"


@pytest.mark.parametrize("payload", [None, {"properties": None}, {"properties": {"periods": 5}}])
def test_forecast_without_periods(payload: Any) -> None:
    result = parse_forecast(1.0, 2.0, None, payload)
    assert forecast_text(result) == "No forecast periods available for 1.0000, 2.0000."


def test_location_name() -> None:
    assert location_name(body(POINT_SGX)) == "Anaheim, CA"
    assert location_name({"properties": {"relativeLocation": None}}) is None
    only_state = {"properties": {"relativeLocation": {"properties": {"state": "AK"}}}}
    assert location_name(only_state) == "AK"
