"""Detection thresholds: seed defaults, partial documents, validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from spendwatch.common.thresholds import DetectionSettings


def test_defaults_follow_the_seed() -> None:
    settings = DetectionSettings()
    assert settings.zscore.multiplier == Decimal("2.5")
    assert settings.zscore.min_users == 5
    assert settings.zscore.min_daily_spend_usd == 50
    assert (settings.spend_spike.multiplier, settings.spend_spike.lookback_days) == (5, 7)
    assert settings.cycle_outlier.multiplier == 10
    assert settings.cost_per_request.multiplier == 3
    assert settings.expensive_model.multiplier == 5
    assert settings.seasonal.k == 4
    assert settings.static_caps.user_cycle_spend_usd == 0  # caps are off until set
    assert settings.critical_factor == 3


def test_a_partial_stored_document_is_merged_over_the_defaults() -> None:
    settings = DetectionSettings.merged(
        {"spend_spike": {"multiplier": "4"}, "critical_factor": 2.5}
    )
    assert settings.spend_spike.multiplier == 4
    assert settings.spend_spike.lookback_days == 7  # untouched keys keep their defaults
    assert settings.critical_factor == Decimal("2.5")
    assert DetectionSettings.merged(None) == DetectionSettings()


@pytest.mark.parametrize(
    "document",
    [
        {"zscore": {"multiplier": -1}},
        {"zscore": {"min_users": 1}},
        {"spend_spike": {"lookback_days": 0}},
        {"spend_spike": {"typo_multiplier": 3}},
        {"critical_factor": 1},
        {"static_caps": {"team_cycle_budget_usd": 1000, "team_budget_critical_ratio": 1}},
        {"static_caps": {"user_cycle_spend_usd": "0.001"}},
    ],
)
def test_invalid_documents_are_refused_with_the_field_named(document: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DetectionSettings.merged(document)


def test_round_trip_through_json_is_exact() -> None:
    settings = DetectionSettings.merged({"static_caps": {"team_cycle_budget_usd": "12345.67"}})
    again = DetectionSettings.merged(settings.model_dump(mode="json"))
    assert again == settings
    assert again.static_caps.team_cycle_budget_usd == Decimal("12345.67")
