"""The HTTP API: ingestion (`/track`, `/batch`), queries (`/activities`), health and docs."""

from streamtrack.api.app import create_app
from streamtrack.api.services import Services

__all__ = ["Services", "create_app"]
