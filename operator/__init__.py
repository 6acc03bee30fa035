"""The operator: scales the worker Deployment on Kafka consumer lag (kopf).

- `resource`: the WorkerAutoscaler custom resource and its spec (defaults, validation);
- `policy`: lag and rates -> replicas, pure code;
- `reconciler`: one poll of one resource (read lag, decide, scale, record);
- `kube`: the thin seam to the Kubernetes API; `handlers`: the kopf wiring; `metrics`.
Run it with `streamtrack operator --namespace NS`.
"""
