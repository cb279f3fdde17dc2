"""NWS GeoJSON bodies turned into typed tool output and readable text; null fields never crash."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

MAX_PERIODS = 6
NOT_GIVEN = "not given"
REPLAY_FIELD = Field(
    default=False,
    description="true when served from recordings (replay mode): not live weather",
)


class Alert(BaseModel):
    """One active NWS alert."""

    event: str = Field(description="alert type, e.g. 'Flood Warning'")
    area: str = Field(description="affected areas as the NWS names them")
    severity: str = Field(description="Extreme, Severe, Moderate, Minor or Unknown")
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    effective: str | None = None
    ends: str | None = None


class AlertsResult(BaseModel):
    """The active alerts for one US state or territory."""

    state: str
    count: int
    alerts: list[Alert]
    replay: bool = REPLAY_FIELD


class ForecastPeriod(BaseModel):
    """One forecast period (usually half a day)."""

    name: str
    start_time: str | None = None
    temperature: float | None = None
    temperature_unit: str | None = None
    wind: str | None = None
    precipitation_chance: float | None = Field(default=None, description="percent")
    short_forecast: str | None = None
    detailed_forecast: str | None = None


class ForecastResult(BaseModel):
    """The next forecast periods for one point."""

    latitude: float
    longitude: float
    location: str | None = Field(default=None, description="nearest city, state")
    periods: list[ForecastPeriod]
    replay: bool = REPLAY_FIELD


def _text(value: Any) -> str | None:
    """A non-empty string, or None for null, missing or non-string values."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def _number(value: Any) -> float | None:
    """A number, or None for null, booleans and anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _properties(item: Any) -> Mapping[str, Any]:
    """The `properties` object of a GeoJSON feature, or an empty mapping."""
    props = item.get("properties") if isinstance(item, Mapping) else None
    return props if isinstance(props, Mapping) else {}


def parse_alerts(state: str, body: Any) -> AlertsResult:
    """The alerts of an `/alerts/active?area=XX` body."""
    features = body.get("features") if isinstance(body, Mapping) else None
    items = features if isinstance(features, list) else []
    alerts = [_alert(_properties(f)) for f in items]
    return AlertsResult(state=state, count=len(alerts), alerts=alerts)


def _alert(props: Mapping[str, Any]) -> Alert:
    """One alert from a feature's properties."""
    return Alert(
        event=_text(props.get("event")) or "Unknown event",
        area=_text(props.get("areaDesc")) or "Unknown area",
        severity=_text(props.get("severity")) or "Unknown",
        headline=_text(props.get("headline")),
        description=_text(props.get("description")),
        instruction=_text(props.get("instruction")),
        effective=_text(props.get("effective")),
        ends=_text(props.get("ends")),
    )


def location_name(points_body: Any) -> str | None:
    """'City, ST' from a `/points` body's relativeLocation, when present."""
    rel = _properties(_properties(points_body).get("relativeLocation"))
    city, state = _text(rel.get("city")), _text(rel.get("state"))
    return ", ".join(part for part in (city, state) if part) or None


def parse_forecast(lat: float, lon: float, location: str | None, body: Any) -> ForecastResult:
    """The first periods of a `/gridpoints/.../forecast` body."""
    periods = _properties(body).get("periods")
    items = periods if isinstance(periods, list) else []
    parsed = [_period(p) for p in items[:MAX_PERIODS] if isinstance(p, Mapping)]
    return ForecastResult(latitude=lat, longitude=lon, location=location, periods=parsed)


def _period(p: Mapping[str, Any]) -> ForecastPeriod:
    """One forecast period; every field may be null."""
    speed, direction = _text(p.get("windSpeed")), _text(p.get("windDirection"))
    pop = p.get("probabilityOfPrecipitation")
    return ForecastPeriod(
        name=_text(p.get("name")) or "Unnamed period",
        start_time=_text(p.get("startTime")),
        temperature=_number(p.get("temperature")),
        temperature_unit=_text(p.get("temperatureUnit")),
        wind=" ".join(part for part in (speed, direction) if part) or None,
        precipitation_chance=_number(pop.get("value")) if isinstance(pop, Mapping) else None,
        short_forecast=_text(p.get("shortForecast")),
        detailed_forecast=_text(p.get("detailedForecast")),
    )


def alerts_text(result: AlertsResult) -> str:
    """Readable text for the alerts of one state."""
    if not result.alerts:
        return f"No active weather alerts for {result.state}."
    blocks = [f"{result.count} active alert(s) for {result.state}:"]
    for alert in result.alerts:
        blocks.append(
            "\n".join(
                [
                    f"Event: {alert.event}",
                    f"Area: {alert.area}",
                    f"Severity: {alert.severity}",
                    f"Description: {alert.description or NOT_GIVEN}",
                    f"Instructions: {alert.instruction or NOT_GIVEN}",
                ]
            )
        )
    return "\n---\n".join(blocks)


def forecast_text(result: ForecastResult) -> str:
    """Readable text for the next forecast periods."""
    where = result.location or f"{result.latitude:.4f}, {result.longitude:.4f}"
    if not result.periods:
        return f"No forecast periods available for {where}."
    lines = [f"Forecast for {where}:"]
    for p in result.periods:
        unit = p.temperature_unit or ""
        temp = NOT_GIVEN if p.temperature is None else f"{p.temperature:g}°{unit}"
        rain = "" if p.precipitation_chance is None else f", {p.precipitation_chance:g}% rain"
        lines.append(
            f"{p.name}: {temp}, wind {p.wind or NOT_GIVEN}{rain}. "
            f"{p.detailed_forecast or p.short_forecast or NOT_GIVEN}"
        )
    return "\n".join(lines)
