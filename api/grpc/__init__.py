"""gRPC ingestion (proto/event.proto): `EventService` beside the HTTP API, with reflection and health.

Same events, limits, errors and keys as POST /track and /batch: the request's Event becomes the
dict `streamtrack.normalize.normalize` takes, and it goes to Kafka through the API's producer.
It runs in `streamtrack dev` on the HTTP server's event loop, and as `streamtrack grpc`, its own
deployable in Kubernetes (see `server`). The modules `event_pb2*` are generated
(scripts/grpc_codegen.py); do not edit them.
"""

from streamtrack.api.grpc.server import SERVICE_NAME, BackgroundGrpc, GrpcServer, run_grpc, serve_beside

__all__ = ["SERVICE_NAME", "BackgroundGrpc", "GrpcServer", "run_grpc", "serve_beside"]
