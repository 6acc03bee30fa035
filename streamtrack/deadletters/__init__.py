"""Dead letters you can query and replay: the dead-letter topic loaded into ClickHouse
(`loader`, table in `streamtrack.store.deadletters`), re-checked and produced again (`replay`)."""

from streamtrack.deadletters.loader import DeadLetterLoader, catch_up
from streamtrack.deadletters.replay import ReplayOutcome, replay_letters

__all__ = ["DeadLetterLoader", "ReplayOutcome", "catch_up", "replay_letters"]
