"""Projects, keys and abuse controls: key generation and lookup, rate limits, the bot filter, privacy.

The API's gate (`streamtrack.api.auth`) and the worker use these; the SQL lives in
`streamtrack.store.keys` and `streamtrack.store.privacy`.
"""
