"""The WorkerAutoscaler custom resource: its identity, its spec with defaults, validated.

The CRD (helm/streamtrack/crds/workerautoscalers.streamtrack.io.yaml) declares the same
defaults and bounds, so the API server fills and checks them before the operator sees a
resource; this module checks them again because a resource may come from a cluster whose
CRD is older, and because the test of the CRD compares its defaults with these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from streamtrack.errors import ConfigError
from streamtrack.operator.policy import Limits

GROUP = "streamtrack.io"
VERSION = "v1alpha1"
KIND = "WorkerAutoscaler"
PLURAL = "workerautoscalers"
SHORT_NAME = "wa"

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]


class ObjectRef(msgspec.Struct, rename="camel", frozen=True):
    name: Name


class KafkaSpec(msgspec.Struct, rename="camel", frozen=True):
    bootstrap_servers: Name
    topic: Name
    consumer_group: Name
    auth_secret_ref: ObjectRef | None = None
    # partitions where the group has no committed offset: count everything kept (earliest,
    # what StreamTrack's workers read) or nothing (latest)
    offset_reset_policy: Literal["earliest", "latest"] = "earliest"


class ScaleUp(msgspec.Struct, rename="camel", frozen=True):
    stabilization_window_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 0
    max_step: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 4
    max_step_percent: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 100


class ScaleDown(msgspec.Struct, rename="camel", frozen=True):
    stabilization_window_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 300
    max_step: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class WorkerAutoscalerSpec(msgspec.Struct, rename="camel", frozen=True):
    scale_target_ref: ObjectRef
    kafka: KafkaSpec
    min_replicas: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 1
    max_replicas: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    lag_per_replica: Annotated[int, msgspec.Meta(ge=1)] = 1000
    activation_lag: NonNegative = 0
    poll_interval_seconds: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 15
    lag_lookahead_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 30
    # ignore partitions whose consumer made no progress since the last poll (KEDA's option)
    exclude_persistent_lag: bool = False
    scale_up: ScaleUp = ScaleUp()
    scale_down: ScaleDown = ScaleDown()

    def __post_init__(self) -> None:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")

    def limits(self) -> Limits:
        return Limits(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            lag_per_replica=self.lag_per_replica,
            activation_lag=self.activation_lag,
            lookahead_s=float(self.lag_lookahead_seconds),
            up_window_s=float(self.scale_up.stabilization_window_seconds),
            down_window_s=float(self.scale_down.stabilization_window_seconds),
            up_step=self.scale_up.max_step,
            up_step_percent=self.scale_up.max_step_percent,
            down_step=self.scale_down.max_step,
        )


def parse_spec(spec: Any) -> WorkerAutoscalerSpec:
    """The resource's spec, defaults filled; ConfigError naming the field when it is invalid."""
    try:
        return msgspec.convert(dict(spec or {}), WorkerAutoscalerSpec)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid WorkerAutoscaler spec: {exc}") from exc


def spec_defaults() -> dict[str, Any]:
    """The defaults, in the resource's own (camelCase) shape, for comparison with the CRD."""
    sample = WorkerAutoscalerSpec(ObjectRef("x"), KafkaSpec("x:9092", "x", "x"))
    return msgspec.to_builtins(sample)
