"""How many workers: from lag, lag per replica and the recent rates. Pure code, no I/O.

Two steps, each one a function a test can call:
1. `recommend`: the replicas the backlog asks for right now.
   - the backlog is projected `lookahead_s` seconds ahead when it grows (never when it
     shrinks), so a growing backlog scales earlier than a shrinking one;
   - with a measured per-replica throughput, enough replicas to keep up with production
     (KEDA users ask for throughput-aware scaling, kedacore/keda#7092);
   - never more than the partitions that have lag (an extra consumer would sit idle);
   - zero only when the projected lag is at or under the activation threshold.
2. `decide`: the Kubernetes HPA's stabilisation applied to the recommendations: scale up to
   the lowest recommendation of the scale-up window, down to the highest of the scale-down
   window, adding at most max(`up_step`, `up_step_percent` of the current replicas) and
   removing at most `down_step` per decision, within [min, max]. Scaling
   from zero skips the scale-up window (activation is immediate, as in KEDA).
The windows read a history of past recommendations that the caller keeps (the operator keeps
it in the resource's status, so it survives restarts and a change of leader).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

Action = Literal["scale_up", "scale_down", "hold"]


@dataclasses.dataclass(frozen=True)
class Limits:
    min_replicas: int
    max_replicas: int
    lag_per_replica: int
    activation_lag: int = 0
    lookahead_s: float = 30.0
    up_window_s: float = 0.0
    down_window_s: float = 300.0
    up_step: int = 4
    up_step_percent: int = 100  # or this share of the current replicas, whichever is more (the HPA's default)
    down_step: int = 100


@dataclasses.dataclass(frozen=True)
class Observation:
    now: float  # seconds, any monotonic origin shared with the history
    lag: int  # total records left, over all partitions
    partitions_with_lag: int
    current: int  # replicas the Deployment asks for now
    growth_per_s: float = 0.0  # how fast the lag changes (production minus consumption)
    produce_per_s: float = 0.0
    per_replica_per_s: float | None = None  # throughput of one busy replica, when measured


@dataclasses.dataclass(frozen=True)
class Recommendation:
    t: float
    replicas: int


@dataclasses.dataclass(frozen=True)
class Decision:
    desired: int
    recommended: int
    reason: str
    history: tuple[Recommendation, ...]
    current: int

    @property
    def action(self) -> Action:
        if self.desired > self.current:
            return "scale_up"
        return "scale_down" if self.desired < self.current else "hold"


@dataclasses.dataclass(frozen=True)
class Sample:
    """What one poll saw: sums of the partitions' offsets, the lag, the replicas working on it."""

    t: float
    end_total: int  # sum of high watermarks: grows with production
    consumed_total: int  # sum of the positions lag counts from: grows with consumption
    lag: int
    partitions_with_lag: int
    replicas: int


@dataclasses.dataclass(frozen=True)
class Rates:
    produce_per_s: float = 0.0
    consume_per_s: float = 0.0
    growth_per_s: float = 0.0
    per_replica_per_s: float | None = None


def measure_rates(
    previous: Sample | None, sample: Sample, lag_per_replica: int, per_replica_per_s: float | None = None
) -> Rates:
    """Rates between two polls, and the throughput of one replica when it can be measured.

    A replica's full speed is only visible when every replica had work during the whole
    interval (a backlog of at least `lag_per_replica` at both polls, a partition with lag per
    replica, the same replicas): otherwise consumption equals production and says nothing
    about capacity. Until then the last measurement (`per_replica_per_s`) is kept.
    """
    if previous is None or sample.t <= previous.t:
        return Rates(per_replica_per_s=per_replica_per_s)
    elapsed = sample.t - previous.t
    produced = max(0.0, (sample.end_total - previous.end_total) / elapsed)  # < 0: the topic was re-created
    consumed = max(0.0, (sample.consumed_total - previous.consumed_total) / elapsed)
    busy = (
        min(previous.lag, sample.lag) >= lag_per_replica
        and sample.partitions_with_lag >= sample.replicas > 0
        and previous.replicas == sample.replicas
        and consumed > 0
    )
    per_replica = consumed / sample.replicas if busy else per_replica_per_s
    return Rates(produced, consumed, (sample.lag - previous.lag) / elapsed, per_replica)


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def recommend(limits: Limits, obs: Observation) -> tuple[int, str]:
    """Replicas the backlog asks for now, and why."""
    projected = obs.lag + max(0.0, obs.growth_per_s) * limits.lookahead_s
    if projected <= limits.activation_lag:
        return limits.min_replicas, f"lag {obs.lag} at or under the activation threshold {limits.activation_lag}"
    by_lag = math.ceil(projected / limits.lag_per_replica)
    by_rate = 0
    if obs.per_replica_per_s and obs.produce_per_s > 0:
        by_rate = math.ceil(obs.produce_per_s / obs.per_replica_per_s)
    wanted = max(1, by_lag, by_rate)
    reason = f"lag {obs.lag} (projected {projected:.0f}) needs {by_lag}"
    if by_rate > by_lag:
        reason = f"production {obs.produce_per_s:.0f}/s needs {by_rate} (lag {obs.lag} needs {by_lag})"
    if wanted > obs.partitions_with_lag:
        wanted = obs.partitions_with_lag
        reason += f", capped at the {obs.partitions_with_lag} partitions with lag"
    replicas = clamp(wanted, limits.min_replicas, limits.max_replicas)
    if replicas != wanted:
        reason += f", clamped to [{limits.min_replicas}, {limits.max_replicas}]"
    return replicas, reason


def decide(limits: Limits, obs: Observation, history: tuple[Recommendation, ...] = ()) -> Decision:
    """The replicas to set now, given the recommendations of the last windows."""
    raw, reason = recommend(limits, obs)
    keep = max(limits.up_window_s, limits.down_window_s)
    history = tuple(r for r in history if obs.now - keep < r.t <= obs.now) + (Recommendation(obs.now, raw),)
    current = obs.current
    if current == 0 and raw > 0:
        stepped = min(raw, limits.up_step)
        reason += "; activated from zero"
    else:
        up = min(r.replicas for r in history if obs.now - r.t <= limits.up_window_s)
        down = max(r.replicas for r in history if obs.now - r.t <= limits.down_window_s)
        desired = min(max(current, up), down)
        if desired != raw:
            window = "scale-up" if raw > current else "scale-down"
            reason += f"; held at {desired} by the {window} stabilisation window"
        up_step = max(limits.up_step, math.ceil(current * limits.up_step_percent / 100))
        stepped = clamp(desired, current - limits.down_step, current + up_step)
        if stepped != desired:
            reason += f"; step limited to {stepped}"
    final = clamp(stepped, limits.min_replicas, limits.max_replicas)
    return Decision(final, raw, reason, history, current)
