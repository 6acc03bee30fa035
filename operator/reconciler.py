"""One reconciliation of a WorkerAutoscaler: read lag, decide, scale, record.

Everything the Kubernetes API does goes through the `Kube` seam (streamtrack.operator.kube);
Kafka is read for real (streamtrack.kafka.lag_reader). What the operator keeps between
polls lives in the resource's status, not in memory, so a restarted operator or a new
leader continues where the last one stopped: the previous poll's offsets (for the rates),
the recent recommendations (for the stabilisation windows) and the measured throughput of
one busy replica.
When it cannot decide (invalid spec, no target, no secret, broker down, topic missing) it
keeps the current scale and says why in the `Ready` condition, with one Warning event when
the reason changes, not one per poll.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from streamtrack.errors import BrokerUnavailable, ConfigError
from streamtrack.kafka.lag_reader import LagAdminClient, TopicLag, lag_admin_client, read_lag
from streamtrack.operator import metrics
from streamtrack.operator.kube import Kube
from streamtrack.operator.policy import Decision, Observation, Recommendation, Sample, decide, measure_rates
from streamtrack.operator.resource import WorkerAutoscalerSpec, parse_spec

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class Target:
    """The WorkerAutoscaler being reconciled."""

    namespace: str
    name: str
    uid: str = ""
    generation: int | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: dict[str, Any]
    decision: Decision | None = None
    report: TopicLag | None = None


class Reconciler:
    def __init__(self, kube: Kube, clock: Clock = time.time, kafka_timeout: float = 5.0) -> None:
        self.kube = kube
        self.clock = clock
        self.kafka_timeout = kafka_timeout
        self._admins: dict[tuple[str, tuple[tuple[str, str], ...]], LagAdminClient] = {}

    def due(self, spec: Any, status: dict[str, Any]) -> bool:
        """True when the resource's poll interval has passed since its last poll."""
        last = status.get("lastPollTime")
        if not last:
            return True
        interval = (spec or {}).get("pollIntervalSeconds", 15)
        return self.clock() - _epoch(last) >= interval - 0.5  # the timer's tick is not exact

    def reconcile(self, target: Target, raw_spec: Any, status: dict[str, Any]) -> Outcome:
        now = self.clock()
        try:
            spec = parse_spec(raw_spec)
        except ConfigError as exc:
            return self._hold(target, status, now, "InvalidSpec", str(exc))
        current = self.kube.read_scale(target.namespace, spec.scale_target_ref.name)
        if current is None:
            return self._hold(target, status, now, "TargetMissing",
                              f"Deployment {spec.scale_target_ref.name!r} not found in {target.namespace!r}")
        auth: dict[str, str] = {}
        if spec.kafka.auth_secret_ref is not None:
            secret = self.kube.read_secret(target.namespace, spec.kafka.auth_secret_ref.name)
            if secret is None:
                return self._hold(target, status, now, "SecretMissing",
                                  f"Secret {spec.kafka.auth_secret_ref.name!r} not found in {target.namespace!r}")
            auth = secret
        try:
            report = read_lag(self._admin(spec, auth), spec.kafka.consumer_group, spec.kafka.topic,
                              offset_reset=spec.kafka.offset_reset_policy, timeout=self.kafka_timeout)
        except BrokerUnavailable as exc:
            return self._hold(target, status, now, "BrokerUnavailable", exc.message, current)
        if not report.exists:
            return self._hold(target, status, now, "TopicMissing",
                              f"topic {spec.kafka.topic!r} does not exist", current)
        return self._decide(target, spec, status, now, current, report)

    def _decide(self, target: Target, spec: WorkerAutoscalerSpec, status: dict[str, Any], now: float,
                current: int, report: TopicLag) -> Outcome:
        limits = spec.limits()
        previous = status.get("sample") or {}
        stuck = _stuck_partitions(report, previous.get("positions") or {}, current) if spec.exclude_persistent_lag else []
        lag = report.total - sum(p.lag for p in report.partitions if p.partition in stuck)
        with_lag = report.partitions_with_lag - len(stuck)
        sample = Sample(now, report.end_total, report.consumed_total, lag, with_lag, current)
        rates = measure_rates(
            _sample_from_status(status.get("sample")), sample, limits.lag_per_replica, status.get("perReplicaPerSecond")
        )
        history = tuple(Recommendation(r["t"], r["replicas"]) for r in status.get("recommendations", []))
        decision = decide(limits, Observation(
            now=now, lag=lag, partitions_with_lag=with_lag, current=current,
            growth_per_s=rates.growth_per_s, produce_per_s=rates.produce_per_s,
            per_replica_per_s=rates.per_replica_per_s,
        ), history)
        last_scale = status.get("lastScaleTime")
        reason = decision.reason
        if stuck:
            reason += f"; not counted: {report.total - lag} records in partitions {stuck} (no progress since the last poll)"
            decision = dataclasses.replace(decision, reason=reason)
        if decision.desired != current:
            self.kube.patch_scale(target.namespace, spec.scale_target_ref.name, decision.desired)
            last_scale = _iso(now)
            reason = "ScaledUp" if decision.action == "scale_up" else "ScaledDown"
            self._event(target, "Normal", reason, f"{current} -> {decision.desired} replicas: {decision.reason}")
        active = lag > limits.activation_lag
        limited = "clamped" in decision.reason or "capped" in decision.reason
        conditions = status.get("conditions", [])
        new_status: dict[str, Any] = {
            "observedGeneration": target.generation,
            "lag": report.total,
            "partitions": len(report.partitions),
            "partitionsWithLag": report.partitions_with_lag,
            "stuckPartitions": stuck if spec.exclude_persistent_lag else None,
            "producedPerSecond": round(rates.produce_per_s, 3),
            "consumedPerSecond": round(rates.consume_per_s, 3),
            "estimatedDrainSeconds": round(report.total / rates.consume_per_s, 1) if rates.consume_per_s else None,
            "perReplicaPerSecond": round(rates.per_replica_per_s, 3) if rates.per_replica_per_s else None,
            "recommendedReplicas": decision.recommended,
            "desiredReplicas": decision.desired,
            "currentReplicas": current,
            "lastScaleTime": last_scale,
            "lastPollTime": _iso(now),
            "lastDecision": decision.reason,
            # the replicas that will work until the next poll are the ones decided now
            "sample": {
                **_sample_to_status(dataclasses.replace(sample, replicas=decision.desired)),
                "positions": {str(p.partition): p.end - p.lag for p in report.partitions},
            },
            "recommendations": [{"t": r.t, "replicas": r.replicas} for r in decision.history],
            "conditions": [
                _condition(conditions, "Ready", "True", "Scaled" if decision.action != "hold" else "Holding",
                           decision.reason, now),
                _condition(conditions, "Active", "True" if active else "False",
                           "LagAboveActivation" if active else "LagAtOrUnderActivation",
                           f"lag {lag}, activation threshold {limits.activation_lag}", now),
                _condition(conditions, "ScalingLimited", "True" if limited else "False",
                           "Limited" if limited else "NotLimited", decision.reason, now),
            ],
        }
        # None removes a field (merge patch): no stale drain estimate or rate once it is unknown
        self.kube.patch_status(target.namespace, target.name, new_status)
        metrics.record(target.namespace, target.name, report, decision, rates.produce_per_s, rates.consume_per_s,
                       limits.max_replicas)
        return Outcome(new_status, decision, report)

    def _hold(self, target: Target, status: dict[str, Any], now: float, reason: str, message: str,
              current: int | None = None) -> Outcome:
        """Cannot decide: keep the scale, say why (one Warning event per new reason)."""
        conditions = status.get("conditions", [])
        previous = next((c for c in conditions if c.get("type") == "Ready"), {})
        if previous.get("reason") != reason:
            self._event(target, "Warning", reason, f"keeping the current scale: {message}")
        new_status = {
            **status,
            "lastPollTime": _iso(now),
            "lastDecision": f"kept the current scale: {message}",
            "conditions": [_condition(conditions, "Ready", "False", reason, message, now)]
            + [c for c in conditions if c.get("type") not in ("Ready",)],
        }
        if current is not None:
            new_status["currentReplicas"] = current
        self.kube.patch_status(target.namespace, target.name, new_status)
        metrics.failed(target.namespace, target.name, reason)
        return Outcome(new_status)

    def _event(self, target: Target, type_: str, reason: str, message: str) -> None:
        involved = {"name": target.name, **({"uid": target.uid} if target.uid else {})}
        self.kube.create_event(target.namespace, involved, type_, reason, message)

    def _admin(self, spec: WorkerAutoscalerSpec, auth: dict[str, str]) -> LagAdminClient:
        """One admin client per (servers, credentials): a new Secret value gives a new client."""
        key = (spec.kafka.bootstrap_servers, tuple(sorted(auth.items())))
        if key not in self._admins:
            self._admins[key] = lag_admin_client({"bootstrap.servers": spec.kafka.bootstrap_servers, **auth})
        return self._admins[key]


def _stuck_partitions(report: TopicLag, previous_positions: dict[str, int], current: int) -> list[int]:
    """Partitions with lag whose consumers made no progress since the last poll (KEDA's
    excludePersistentLag: a poison record or a stuck consumer is not helped by more replicas).
    At zero replicas nothing can progress, so nothing counts as stuck there."""
    if current == 0:
        return []
    return [p.partition for p in report.partitions
            if p.lag > 0 and previous_positions.get(str(p.partition)) == p.end - p.lag]


def _sample_to_status(sample: Sample) -> dict[str, Any]:
    return {"t": sample.t, "endTotal": sample.end_total, "consumedTotal": sample.consumed_total, "lag": sample.lag,
            "partitionsWithLag": sample.partitions_with_lag, "replicas": sample.replicas}


def _sample_from_status(saved: dict[str, Any] | None) -> Sample | None:
    if not saved:
        return None
    try:
        return Sample(saved["t"], saved["endTotal"], saved["consumedTotal"], saved["lag"],
                      saved.get("partitionsWithLag", 0), saved["replicas"])
    except KeyError:  # written by another version: start the rates afresh
        return None


def _condition(previous: list[dict[str, Any]], type_: str, status: str, reason: str, message: str,
               now: float) -> dict[str, Any]:
    old = next((c for c in previous if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status and "lastTransitionTime" in old else _iso(now)
    return {"type": type_, "status": status, "reason": reason, "message": message[:1024], "lastTransitionTime": since}


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
