"""Realistic synthetic usage events for tests and benchmarks (not used by services)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendwatch.common.events import UsageRecordedV1, utc_now

# (model, typical charged cents per request): the seed's price ladder, opus-max-thinking-fast ~10x.
MODEL_MIX: tuple[tuple[str, float, int], ...] = (
    ("composer-1", 2.0, 30),
    ("claude-4.5-sonnet", 9.0, 35),
    ("gpt-5", 6.0, 15),
    ("claude-4.6-opus-high", 35.0, 12),
    ("claude-4.6-opus-max", 80.0, 6),
    ("claude-4.6-opus-max-thinking-fast", 400.0, 2),
)


def sample_usage_events(
    n: int,
    *,
    seed: int = 7,
    users: int = 60,
    days: int = 14,
    end: datetime | None = None,
    provider: str = "cursor",
) -> Iterator[UsageRecordedV1]:
    """`n` events spread over `days` days for `users` developers, deterministic per seed."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    end = end or datetime(2026, 11, 21, 18, tzinfo=UTC)
    emails = [f"dev{i:04d}@example.com" for i in range(users)]
    models = [m for m, _, _ in MODEL_MIX]
    weights = [w for _, _, w in MODEL_MIX]
    cents = {m: c for m, c, _ in MODEL_MIX}
    now = utc_now()
    for i in range(n):
        model = rng.choices(models, weights)[0]
        occurred = end - timedelta(seconds=rng.randrange(days * 86400))
        charged = Decimal(str(round(cents[model] * rng.lognormvariate(0, 0.6), 5)))
        yield UsageRecordedV1(
            event_id=f"{provider}:{seed}:{i}",
            provider=provider,
            account="team-1",
            occurred_at=occurred,
            user_email=rng.choice(emails),
            model=model,
            kind="usage_based" if rng.random() < 0.7 else "included",
            max_mode="max" in model,
            input_tokens=rng.randrange(100, 20_000),
            output_tokens=rng.randrange(50, 8_000),
            cache_read_tokens=rng.randrange(0, 50_000),
            cache_write_tokens=rng.randrange(0, 10_000),
            cost_micros=int(charged * 10_000),  # cents -> micro-dollars, exact
            request_units=Decimal(rng.choice(["1", "1.4", "2", "5"])),
            is_headless=rng.random() < 0.05,
            ingested_at=now,
        )
