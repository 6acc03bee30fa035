"""Autoscaling simulation: load traces through our policy and a KEDA-like baseline.

    python bench/autoscale.py [--lag-per-replica 5000] [--per-replica 1000] [--partitions 12]

Replays four load traces (steady, spike, sawtooth, slow ramp; one hour, one-second steps)
through streamtrack.operator.policy with a modelled worker group, and prints per trace and
policy: peak lag, time to drain (from the peak until the lag is under one replica's
target), mean lag, scale changes, replica-minutes.
The model: each replica consumes `--per-replica` records/s from the partitions it owns
(at most one consumer per partition), a new replica works after `--start-delay` s, every
change of the ready replicas pauses consumption for `--rebalance` s (a group rebalance),
and the lag a poll sees includes what waits in the workers' batch window (0.5 s).
Both policies poll every 15 s with the same limits, windows and steps; they differ in the
recommendation only:
- baseline (KEDA's Kafka scaler under an HPA): ceil(lag / lagPerReplica), capped at the
  partitions;
- ours: the lag projected 30 s ahead when it grows, and at least enough replicas for the
  production rate at the measured per-replica throughput (streamtrack.operator.policy).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable

from streamtrack.operator.policy import Limits, Observation, Recommendation, Sample, decide, measure_rates

Trace = Callable[[int], float]
DURATION_S = 3600
POLL_S = 15
BATCH_WAIT_S = 0.5

TRACES: dict[str, Trace] = {
    "steady 5k/s": lambda t: 5_000.0,
    "spike 2k->10k/s": lambda t: 10_000.0 if 900 <= t < 1_080 or 2_400 <= t < 2_580 else 2_000.0,
    "sawtooth 1k-9k/s": lambda t: 1_000.0 + 8_000.0 * (t % 600) / 600,
    "slow ramp 0.5k-10k/s": lambda t: 500.0 + 9_500.0 * t / DURATION_S,
}


@dataclasses.dataclass(frozen=True)
class Model:
    partitions: int
    per_replica: float
    start_delay_s: int
    rebalance_s: int


@dataclasses.dataclass
class Result:
    peak_lag: float = 0.0
    peak_at: int = 0
    drained_at: int | None = None
    lag_sum: float = 0.0
    changes: int = 0
    replica_seconds: int = 0


def simulate(trace: Trace, limits: Limits, model: Model, ours: bool) -> Result:
    result = Result()
    backlog = end_total = consumed_total = 0.0
    pods = [0]  # the time each pod is ready; one replica at the start
    ready_before = 1
    paused_until = -1
    history: tuple[Recommendation, ...] = ()
    previous: Sample | None = None
    per_replica: float | None = None
    for t in range(DURATION_S):
        produced = trace(t)
        backlog += produced
        end_total += produced
        ready = sum(1 for at in pods if at <= t)
        if ready != ready_before:
            paused_until, ready_before = t + model.rebalance_s, ready
        capacity = 0.0 if t < paused_until else min(ready, model.partitions) * model.per_replica
        consumed = min(backlog, capacity)
        backlog -= consumed
        consumed_total += consumed
        if t % POLL_S == 0:
            lag = int(backlog + produced * BATCH_WAIT_S)
            with_lag = min(model.partitions, lag)  # keys spread evenly over the partitions
            sample = Sample(t, int(end_total), int(end_total) - lag, lag, with_lag, len(pods))
            rates = measure_rates(previous, sample, limits.lag_per_replica, per_replica)
            previous, per_replica = sample, rates.per_replica_per_s
            obs = Observation(now=t, lag=lag, partitions_with_lag=with_lag, current=len(pods))
            if ours:
                obs = dataclasses.replace(obs, growth_per_s=rates.growth_per_s, produce_per_s=rates.produce_per_s,
                                          per_replica_per_s=rates.per_replica_per_s)
            decision = decide(limits if ours else dataclasses.replace(limits, lookahead_s=0), obs, history)
            history = decision.history
            if decision.desired != len(pods):
                result.changes += 1
                if decision.desired > len(pods):
                    pods += [t + model.start_delay_s] * (decision.desired - len(pods))
                else:
                    pods = sorted(pods)[: decision.desired]  # the newest (not yet ready) go first
        result.replica_seconds += len(pods)
        result.lag_sum += backlog
        if backlog > result.peak_lag:
            result.peak_lag, result.peak_at, result.drained_at = backlog, t, None
        elif result.drained_at is None and backlog < limits.lag_per_replica:
            result.drained_at = t
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lag-per-replica", type=int, default=5_000)
    parser.add_argument("--per-replica", type=float, default=1_000.0, help="records/s one worker consumes")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--max-replicas", type=int, default=12)
    parser.add_argument("--start-delay", type=int, default=20, help="seconds before a new worker consumes")
    parser.add_argument("--rebalance", type=int, default=5, help="seconds of pause per change of ready workers")
    args = parser.parse_args()
    limits = Limits(min_replicas=1, max_replicas=args.max_replicas, lag_per_replica=args.lag_per_replica,
                    lookahead_s=30, up_window_s=0, down_window_s=300, up_step=4, up_step_percent=100, down_step=100)
    model = Model(args.partitions, args.per_replica, args.start_delay, args.rebalance)
    print(f"{args.partitions} partitions, {args.per_replica:.0f} records/s per worker, lagPerReplica "
          f"{args.lag_per_replica}, replicas 1-{args.max_replicas}, poll {POLL_S} s, scale-down window 300 s, "
          f"steps max(+4, +100%)/-100, start {args.start_delay} s, rebalance pause {args.rebalance} s, {DURATION_S} s per trace")
    header = (f"{'trace':<22} {'policy':<9} {'peak lag':>9} {'drain s':>8} {'mean lag':>9} "
              f"{'changes':>8} {'replica-min':>12}")
    print(header)
    print("-" * len(header))
    for name, trace in TRACES.items():
        for label, ours in (("KEDA-like", False), ("ours", True)):
            r = simulate(trace, limits, model, ours)
            drain = "never" if r.drained_at is None else str(r.drained_at - r.peak_at)
            print(f"{name:<22} {label:<9} {r.peak_lag:>9,.0f} {drain:>8} {r.lag_sum / DURATION_S:>9,.0f} "
                  f"{r.changes:>8} {math.ceil(r.replica_seconds / 60):>12,}")


if __name__ == "__main__":
    main()
