"""The models the simulated team uses, with per-token prices.

Rates are USD per million tokens, stored as integer hundredths (300 = $3.00/M), so a request's
cost is an exact integer of "centi-micro-dollars" before it is rounded to whole micro-dollars.
Cursor-native and Auto rates are Cursor's published ones; third-party models follow the
providers' list prices, and the `-max` variants carry the legacy 20% Max Mode surcharge, which
puts `claude-4.6-opus-max-thinking-fast` at about 10x the cheapest model per output token
(the product seed's quiz: $150/M + 20% against composer-1.5's $17.50/M).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: its name as Cursor reports it and its per-token rates."""

    name: str
    input_rate: int
    cache_write_rate: int
    cache_read_rate: int
    output_rate: int
    max_mode: bool = False
    thinking: bool = False
    token_fee: bool = True  # the Cursor Token Rate applies to every non-Auto agent request


def _max(spec: ModelSpec, name: str, *, thinking: bool = False) -> ModelSpec:
    """The Max Mode twin of `spec`: the same rates plus 20%."""
    return ModelSpec(
        name=name,
        input_rate=spec.input_rate * 6 // 5,
        cache_write_rate=spec.cache_write_rate * 6 // 5,
        cache_read_rate=spec.cache_read_rate * 6 // 5,
        output_rate=spec.output_rate * 6 // 5,
        max_mode=True,
        thinking=thinking,
    )


_OPUS = ModelSpec("claude-4.6-opus-high", 500, 625, 50, 2500)
_OPUS_FAST = ModelSpec("claude-4.6-opus-thinking-fast", 3000, 3750, 300, 15000, thinking=True)

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("auto", 125, 125, 25, 600, token_fee=False),
    ModelSpec("composer-1.5", 350, 350, 35, 1750),
    ModelSpec("claude-4.5-haiku", 100, 125, 10, 500),
    ModelSpec("gpt-5.2", 175, 175, 18, 1400),
    ModelSpec("claude-4.5-sonnet", 300, 375, 30, 1500),
    ModelSpec("claude-4.5-sonnet-thinking", 300, 375, 30, 1500, thinking=True),
    _OPUS,
    ModelSpec("claude-4.6-opus-high-thinking", 500, 625, 50, 2500, thinking=True),
    _max(_OPUS, "claude-4.6-opus-max"),
    _max(_OPUS_FAST, "claude-4.6-opus-max-thinking-fast", thinking=True),
)
MODEL_INDEX: dict[str, int] = {spec.name: i for i, spec in enumerate(MODELS)}

SONNET = MODEL_INDEX["claude-4.5-sonnet"]
OPUS_HIGH = MODEL_INDEX["claude-4.6-opus-high"]
OPUS_HIGH_THINKING = MODEL_INDEX["claude-4.6-opus-high-thinking"]
OPUS_MAX = MODEL_INDEX["claude-4.6-opus-max"]
OPUS_MAX_THINKING_FAST = MODEL_INDEX["claude-4.6-opus-max-thinking-fast"]

# How often an ordinary developer picks each model (same order as MODELS). The ~10x model is
# never picked by chance, so every request to it in the data is an injected anomaly.
BASE_WEIGHTS: tuple[float, ...] = (8, 14, 6, 8, 28, 8, 16, 8, 1.5, 0)


def cost_centimicros(
    model: ModelSpec, *, input_tokens: int, output_tokens: int, cache_write: int, cache_read: int
) -> int:
    """Model cost of one request in hundredths of a micro-dollar (exact)."""
    return (
        input_tokens * model.input_rate
        + cache_write * model.cache_write_rate
        + cache_read * model.cache_read_rate
        + output_tokens * model.output_rate
    )
