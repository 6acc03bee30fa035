"""The operator: scales the worker Deployment on Kafka consumer lag (kopf).

Not built yet (issue 4). It will reuse `streamtrack.kafka.offsets` for the lag it reads.
"""
