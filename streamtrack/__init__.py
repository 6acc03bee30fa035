"""StreamTrack: self-hosted event tracking — HTTP -> Kafka -> ClickHouse, with a query API."""

__version__ = "0.2.0"
