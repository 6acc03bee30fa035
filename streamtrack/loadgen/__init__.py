"""The load generator: realistic shop traffic sent to the API at a target rate.

`traffic` is the seeded model of users, sessions and funnels; `sender` paces and sends it
(single /track or /batch requests); `stats` counts outcomes and latency; `command` is
`streamtrack loadgen`; `control` runs that command as a child process for the dev-mode
/dev/loadgen routes. Nothing here is imported by the API or the worker outside dev mode.
"""
