"""The settings document the API stores: only what differs from the defaults, as numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spendwatch.api.models.settings import changed_paths, flatten, stored_document
from spendwatch.common.thresholds import DetectionSettings, SpendSpike, ZScore

pytestmark = pytest.mark.timeout(10)


def test_flatten_gives_one_dotted_key_per_threshold() -> None:
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}}) == {"a": 1, "b.c": 2, "b.d.e": 3}
    leaves = flatten(DetectionSettings().model_dump())
    assert leaves["spend_spike.multiplier"] == Decimal("5.0")
    assert "spend_spike" not in leaves


def test_changed_paths_compare_values_not_spellings() -> None:
    old = DetectionSettings()
    same = DetectionSettings(spend_spike=SpendSpike(multiplier=Decimal("5.00")))
    new = DetectionSettings(
        critical_factor=Decimal(4),
        spend_spike=SpendSpike(multiplier=Decimal("6")),
        zscore=ZScore(min_users=9),
    )
    assert changed_paths(old, same) == []
    assert changed_paths(old, new) == [
        "critical_factor",
        "zscore.min_users",
        "spend_spike.multiplier",
    ]


def test_the_stored_document_holds_only_non_defaults_and_merges_back() -> None:
    new = DetectionSettings(spend_spike=SpendSpike(multiplier=Decimal("6.5"), warmup_days=0))
    document = stored_document(new)
    assert document == {"spend_spike": {"multiplier": "6.5", "warmup_days": 0}}
    assert DetectionSettings.merged(document) == new
    assert stored_document(DetectionSettings()) == {}
