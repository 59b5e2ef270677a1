"""Detection thresholds (shared by the detector and the API): one validated document in the
`settings` table (key `detection`).

Defaults follow the product seed; 0 turns a threshold off. Money is USD as Decimal. A stored
document may hold only some keys: it is merged over the defaults, so new thresholds get their
defaults without a migration.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

Usd = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Factor = Annotated[Decimal, Field(ge=0, max_digits=8, decimal_places=3)]
Days = Annotated[int, Field(ge=1, le=365)]
OptionalDays = Annotated[int, Field(ge=0, le=365)]  # 0 = off
Count = Annotated[int, Field(ge=0)]
Users = Annotated[int, Field(ge=2, le=100_000)]

SETTINGS_KEY = "detection"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StaticCaps(_Section):
    """Hard caps, all off by default; the team budget warns at 100 %, critical at the ratio."""

    user_cycle_spend_usd: Usd = Decimal(0)
    user_daily_requests: Annotated[int, Field(ge=0)] = 0
    user_daily_tokens: Annotated[int, Field(ge=0)] = 0
    team_cycle_budget_usd: Usd = Decimal(0)
    team_budget_critical_ratio: Factor = Decimal("1.10")


class ZScore(_Section):
    """A user's daily spend far above the team's active users that day (sample std-dev)."""

    multiplier: Factor = Decimal("2.5")
    min_users: Users = 5
    min_daily_spend_usd: Usd = Decimal(50)
    # Only when today is also this many times the user's own usual working day (the average of
    # their days with spend over 28 days; 0: off), so a steadily heavy user is not "an outlier"
    # every working day, and someone without history is not judged yet.
    min_own_ratio: Factor = Decimal("2.0")
    cooldown_days: OptionalDays = 7  # one alert per user per week, not one per busy day


class SpendSpike(_Section):
    """Today's spend against the user's own average over the lookback (missing days are 0)."""

    multiplier: Factor = Decimal("5.0")
    lookback_days: Days = 7
    min_daily_spend_usd: Usd = Decimal(50)
    min_baseline_usd: Usd = Decimal(1)
    # The baseline is the higher of the lookback's and this longer window's average, so the
    # first normal day after a vacation is not a spike (0: off).
    long_lookback_days: OptionalDays = 28
    warmup_days: OptionalDays = 7  # a user needs this much history before their first spike


class CycleOutlier(_Section):
    """Billing-cycle spend against the team median of active users."""

    multiplier: Factor = Decimal("10.0")
    min_users: Users = 5
    min_median_usd: Usd = Decimal(10)


class CostPerRequest(_Section):
    """Today's $/request against the user's own history, naming the model behind it."""

    multiplier: Factor = Decimal("3.0")
    lookback_days: Days = 30
    min_daily_spend_usd: Usd = Decimal(20)
    min_requests: Count = 10  # today
    min_history_requests: Count = 50


class ExpensiveModel(_Section):
    """A user's $/request on a model family against the team median for comparable work."""

    multiplier: Factor = Decimal("5.0")
    min_requests: Annotated[int, Field(ge=1)] = 20
    min_spend_usd: Usd = Decimal(20)  # on that model that day


class PlanExhaustion(_Section):
    """A user went past the plan's included usage this cycle (info; feeds the digest)."""

    enabled: bool = True


class Seasonal(_Section):
    """Spend above a robust weekday/hour baseline (median + k·MAD), after a warm-up."""

    k: Factor = Decimal(4)
    min_spend_usd: Usd = Decimal(25)
    min_increase_pct: Annotated[int, Field(ge=0, le=100_000)] = 200  # today >= 3x the median
    warmup_days: Days = 21
    weeks: Annotated[int, Field(ge=2, le=26)] = 8  # same-weekday samples in the baseline
    cooldown_days: OptionalDays = 7  # a new level is one alert, not one per day


class Runaway(_Section):
    """Bursts in a sliding window far above the user's own p99, or headless use for hours."""

    p99_multiplier: Factor = Decimal(5)
    min_window_spend_usd: Usd = Decimal(10)
    window_minutes: Annotated[int, Field(ge=1, le=240)] = 15
    min_window_requests: Count = 60  # a request every 15 s for the whole window
    headless_hours: Annotated[int, Field(ge=0, le=48)] = 3
    history_days: Annotated[int, Field(ge=1, le=90)] = 14  # where the p99 comes from


class DetectionSettings(_Section):
    """Every detector's thresholds; `critical_factor` = how many threshold-distances is critical."""

    critical_factor: Annotated[Decimal, Field(gt=1, max_digits=6, decimal_places=2)] = Decimal(3)
    # Usage older than this many days is history, not news: a first backfill pages nobody.
    max_age_days: Annotated[int, Field(ge=0, le=90)] = 3
    static_caps: StaticCaps = StaticCaps()
    zscore: ZScore = ZScore()
    spend_spike: SpendSpike = SpendSpike()
    cycle_outlier: CycleOutlier = CycleOutlier()
    cost_per_request: CostPerRequest = CostPerRequest()
    expensive_model: ExpensiveModel = ExpensiveModel()
    plan_exhaustion: PlanExhaustion = PlanExhaustion()
    seasonal: Seasonal = Seasonal()
    runaway: Runaway = Runaway()

    @model_validator(mode="after")
    def _budget_ratio_above_one(self) -> DetectionSettings:
        ratio = self.static_caps.team_budget_critical_ratio
        if self.static_caps.team_cycle_budget_usd and ratio <= 1:
            raise ValueError("static_caps.team_budget_critical_ratio must be above 1")
        return self

    @classmethod
    def merged(cls, stored: dict[str, Any] | None) -> DetectionSettings:
        """Defaults with a stored (possibly partial) document over them; validated as a whole."""
        document = cls().model_dump(mode="json")
        for section, values in (stored or {}).items():
            if isinstance(values, dict) and isinstance(document.get(section), dict):
                document[section] = document[section] | values
            else:
                document[section] = values
        return cls.model_validate(document)
