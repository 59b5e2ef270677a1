"""A simulated Cursor team behind a real HTTP server: demos, end-to-end tests, benchmarks.

Run it::

    python -m spendwatch.simulator --port 8765 --developers 60 --seed 1 --days 30 \\
        --admin-key key_...   # logs `simulator.ready url=http://127.0.0.1:8765`

or from Python::

    team = SimulatedTeam(seed=1, developers=60, days=30)
    async with run_simulator(team, port=0, admin_key=key) as url:
        ...  # point CURSOR_API_BASE_URL at url

The Admin API (HTTP Basic, the admin key as user name and an empty password; at most
`rate_limit_per_minute` requests per rolling minute, default 20, else 429 with `Retry-After`):
`GET /teams/members`, `POST /teams/spend`, `POST /teams/daily-usage-data`,
`POST /teams/filtered-usage-events`, `GET /teams/groups?billingCycle=YYYY-MM-DD`, with the field
names, units and error bodies of reference/provider-apis.md §1. Usage events are ordered by
timestamp descending, then member id, so pages are stable; `startDate`/`endDate` are inclusive
and default to the 30 days up to the simulated now, `pageSize` defaults to 10 (spend: 100).
Daily usage refuses ranges over 30 days (400). Spend and group totals are whole cents, rounded
half-even from the exact sums; event cents are exact (at most 4 decimals, 6 for late events).

The team is deterministic in (seed, developers, days, now): weekday-heavy activity, a model mix
priced per token, included-plan usage that runs out partway through the billing cycle, errored
events with 0 cents, discounts, the Cursor Token Fee, a share of events in the older shape
without `chargedCents`, billing groups plus Unassigned, and (with >= 8 developers and >= 14 days)
four injected anomalies: a spend spike, a switch to claude-4.6-opus-max-thinking-fast, a runaway
headless agent loop and a billing-cycle outlier.

Side endpoints under `/_sim/` need NO authentication (keep the simulator off shared networks):

- `GET /_sim/truth[?start_ms=&end_ms=&user=]`: per (lower-case e-mail, UTC day) the event count
  and exact cost in micro-dollars, totals, and the injected anomalies with the detector that
  should fire. The cost rule is `team.COST_RULE`: chargedCents x 10,000 when present, else
  (tokenUsage.totalCents + cursorTokenFee) x 10,000, summed exactly and rounded half-even to an
  integer only at the end; errored events count as events with cost 0.
- `GET /_sim/requests[?since=seq]` / `DELETE`: the admin-request log (method, path, query,
  body, status, monotonic time).
- `POST /_sim/late-event` `{"timestamp_ms", "user_email", "model", "charged_cents" |
  "total_cents", "cursor_token_fee"?, "kind"?, "is_headless"?}`: an event that arrives late.
- `POST /_sim/faults` `{"kind": "429"|"500"|"403"|..|"malformed_page"|"delay", "count": N,
  "endpoint"?: "filtered-usage-events", "variant"?: "wrong_types"|"missing_user_email"|
  "garbage_json", "retry_after"?: s, "seconds"?: s}`: the next N matching admin requests fail
  that way (after authentication, before the rate limit); `GET` lists, `DELETE` clears.
- `POST /_sim/reset-rate-limit`, `GET /_sim/team`, `GET /_sim/health`.
"""

from spendwatch.simulator.server import DEFAULT_ADMIN_KEY, make_app, run_simulator
from spendwatch.simulator.team import COST_RULE, SimulatedTeam

__all__ = ["COST_RULE", "DEFAULT_ADMIN_KEY", "SimulatedTeam", "make_app", "run_simulator"]
