#!/bin/sh
# Print the deployed API's URL: $API_URL when set, else the LoadBalancer address of the API Service.
set -eu
if [ -n "${API_URL:-}" ]; then echo "$API_URL"; exit 0; fi
RELEASE="${RELEASE:-streamtrack}"
NAMESPACE="${NAMESPACE:-streamtrack}"
# The chart names objects <release>-streamtrack-..., or <release>-... when the release name has "streamtrack".
case "$RELEASE" in *streamtrack*) service="$RELEASE-api" ;; *) service="$RELEASE-streamtrack-api" ;; esac
address=$(kubectl --namespace "$NAMESPACE" get service "$service" \
    -o jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}')
[ -n "$address" ] || { echo "no load balancer address on service $service: set API_URL" >&2; exit 1; }
echo "http://$address"
