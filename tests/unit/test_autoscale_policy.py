"""Properties of the autoscaling policy (streamtrack.operator.policy), checked by hypothesis.

"Never above the partitions with lag" is checked where the policy adds replicas: an
increase never goes beyond max(min, partitions with lag). Holding replicas that became
idle during the scale-down window is the window's purpose (no flapping), so it is allowed.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamtrack.operator.policy import (
    Decision,
    Limits,
    Observation,
    Rates,
    Recommendation,
    Sample,
    decide,
    measure_rates,
    recommend,
)

EXAMPLES = settings(max_examples=200, deadline=None)


@st.composite
def limits(draw: st.DrawFn) -> Limits:
    low = draw(st.integers(0, 10))
    return Limits(
        min_replicas=low,
        max_replicas=draw(st.integers(max(low, 1), 50)),
        lag_per_replica=draw(st.integers(1, 10_000)),
        activation_lag=draw(st.integers(0, 5_000)),
        lookahead_s=draw(st.sampled_from([0.0, 15.0, 30.0, 120.0])),
        up_window_s=draw(st.sampled_from([0.0, 30.0, 60.0])),
        down_window_s=draw(st.sampled_from([0.0, 60.0, 300.0])),
        up_step=draw(st.integers(1, 10)),
        up_step_percent=draw(st.sampled_from([0, 50, 100, 200])),
        down_step=draw(st.integers(1, 100)),
    )


@st.composite
def observations(draw: st.DrawFn, now: float = 1_000.0) -> Observation:
    partitions = draw(st.integers(0, 64))
    lag = draw(st.integers(partitions, 10_000_000)) if partitions else 0
    return Observation(
        now=now,
        lag=lag,
        partitions_with_lag=partitions,
        current=draw(st.integers(0, 60)),
        growth_per_s=draw(st.floats(-10_000, 10_000, allow_nan=False)),
        produce_per_s=draw(st.floats(0, 100_000, allow_nan=False)),
        per_replica_per_s=draw(st.none() | st.floats(1, 50_000, allow_nan=False)),
    )


histories = st.lists(
    st.builds(Recommendation, t=st.floats(600.0, 1_000.0, allow_nan=False), replicas=st.integers(0, 60)), max_size=20
).map(tuple)


@EXAMPLES
@given(limits(), observations(), histories)
def test_never_outside_min_max(lim: Limits, obs: Observation, history: tuple[Recommendation, ...]) -> None:
    decision = decide(lim, obs, history)
    assert lim.min_replicas <= decision.desired <= lim.max_replicas
    assert lim.min_replicas <= decision.recommended <= lim.max_replicas


@EXAMPLES
@given(limits(), observations(), histories)
def test_never_adds_replicas_beyond_the_partitions_with_lag(
    lim: Limits, obs: Observation, history: tuple[Recommendation, ...]
) -> None:
    decision = decide(lim, obs, history)
    assert decision.recommended <= max(lim.min_replicas, obs.partitions_with_lag)
    if decision.desired > obs.current:
        assert decision.desired <= max(lim.min_replicas, obs.partitions_with_lag)


@EXAMPLES
@given(limits(), observations(), histories, st.integers(0, 10_000_000))
def test_monotone_in_lag(lim: Limits, obs: Observation, history: tuple[Recommendation, ...], more: int) -> None:
    """Same history, replicas and rates: more lag never gives fewer replicas."""
    bigger = Observation(**{**obs.__dict__, "lag": obs.lag + more}) if obs.partitions_with_lag else obs
    assert decide(lim, obs, history).desired <= decide(lim, bigger, history).desired


@EXAMPLES
@given(limits(), observations(), histories)
def test_scale_to_zero_only_under_the_activation_threshold(
    lim: Limits, obs: Observation, history: tuple[Recommendation, ...]
) -> None:
    decision = decide(lim, obs, history)
    if decision.desired == 0:
        assert obs.lag <= lim.activation_lag
    if obs.current == 0 and obs.lag > lim.activation_lag and obs.partitions_with_lag:
        assert decision.desired >= 1  # activation from zero is immediate


@EXAMPLES
@given(limits(), observations(), histories, st.sampled_from([5.0, 15.0, 30.0]))
def test_no_oscillation_under_constant_lag(
    lim: Limits, obs: Observation, history: tuple[Recommendation, ...], poll_s: float
) -> None:
    """Constant lag and rates: the replicas move one way only, then settle on the recommendation."""
    replicas = [obs.current]
    now = obs.now
    steps = int((lim.up_window_s + lim.down_window_s) / poll_s) + 80
    decision: Decision | None = None
    for _ in range(steps):
        decision = decide(lim, Observation(**{**obs.__dict__, "now": now, "current": replicas[-1]}), history)
        history = decision.history
        replicas.append(decision.desired)
        now += poll_s
    changes = [b - a for a, b in zip(replicas, replicas[1:], strict=False) if b != a]
    assert all(c > 0 for c in changes) or all(c < 0 for c in changes), replicas
    assert decision is not None and replicas[-1] == decision.recommended


@EXAMPLES
@given(limits(), observations(), st.floats(1, 10_000, allow_nan=False))
def test_a_growing_backlog_scales_at_least_as_early_as_a_shrinking_one(
    lim: Limits, obs: Observation, rate: float
) -> None:
    growing = Observation(**{**obs.__dict__, "growth_per_s": rate})
    shrinking = Observation(**{**obs.__dict__, "growth_per_s": -rate})
    assert recommend(lim, growing)[0] >= recommend(lim, shrinking)[0]


def test_growing_backlog_example() -> None:
    """Same lag of 4,000 at 1,000 per replica: growing by 100/s asks for 7 (projected 30 s), shrinking for 4."""
    lim = Limits(min_replicas=1, max_replicas=20, lag_per_replica=1_000, lookahead_s=30)
    base = {"now": 0.0, "lag": 4_000, "partitions_with_lag": 12, "current": 2}
    assert recommend(lim, Observation(**base, growth_per_s=100))[0] == 7
    assert recommend(lim, Observation(**base, growth_per_s=-100))[0] == 4


def test_throughput_floor_keeps_up_with_production() -> None:
    """Small lag but 9,000 events/s produced and 1,000/s per replica: 9 replicas, not 1."""
    lim = Limits(min_replicas=1, max_replicas=20, lag_per_replica=10_000)
    obs = Observation(now=0, lag=500, partitions_with_lag=12, current=3, produce_per_s=9_000, per_replica_per_s=1_000)
    replicas, reason = recommend(lim, obs)
    assert replicas == 9
    assert "production 9000/s needs 9" in reason


def test_scale_down_waits_for_the_window_then_goes() -> None:
    lim = Limits(min_replicas=1, max_replicas=10, lag_per_replica=100, down_window_s=300)
    history = (Recommendation(0.0, 8),)
    quiet = Observation(now=150.0, lag=0, partitions_with_lag=0, current=8)
    held = decide(lim, quiet, history)
    assert (held.desired, held.recommended, held.action) == (8, 1, "hold")
    assert "scale-down stabilisation window" in held.reason
    later = decide(lim, Observation(**{**quiet.__dict__, "now": 301.0}), held.history)
    assert (later.desired, later.action) == (1, "scale_down")


def test_rates_and_the_throughput_of_a_busy_replica() -> None:
    before = Sample(t=0, end_total=10_000, consumed_total=2_000, lag=8_000, partitions_with_lag=6, replicas=4)
    busy = Sample(t=10, end_total=30_000, consumed_total=14_000, lag=16_000, partitions_with_lag=6, replicas=4)
    rates = measure_rates(before, busy, lag_per_replica=1_000)
    assert (rates.produce_per_s, rates.consume_per_s, rates.growth_per_s) == (2_000, 1_200, 800)
    assert rates.per_replica_per_s == 300  # 1,200/s by 4 replicas that all had work
    idle = Sample(t=20, end_total=31_000, consumed_total=30_900, lag=100, partitions_with_lag=2, replicas=4)
    assert measure_rates(busy, idle, 1_000, per_replica_per_s=300).per_replica_per_s == 300  # kept, not 1,690/4
    assert measure_rates(None, busy, 1_000) == Rates()


def test_scale_up_steps_are_four_or_double_whichever_is_more() -> None:
    lim = Limits(min_replicas=1, max_replicas=100, lag_per_replica=10)
    busy = {"now": 0.0, "lag": 10_000, "partitions_with_lag": 100}
    assert decide(lim, Observation(**busy, current=2)).desired == 6  # +4
    assert decide(lim, Observation(**busy, current=10)).desired == 20  # x2
    assert decide(Limits(**{**lim.__dict__, "up_step_percent": 0}), Observation(**busy, current=10)).desired == 14
