#!/bin/sh
# Install or upgrade StreamTrack with Helm; a release that does not become ready is rolled back.
#   IMAGE_REGISTRY=... IMAGE_TAG=... [RELEASE=streamtrack] [NAMESPACE=streamtrack] [VALUES=file.yaml] scripts/deploy.sh
# Needs helm (3.8+ or 4) and a kubeconfig (Jenkins: the kubeconfig credential, as KUBECONFIG).
set -eu
cd "$(dirname "$0")/.."
: "${IMAGE_REGISTRY:?set IMAGE_REGISTRY}"
: "${IMAGE_TAG:?set IMAGE_TAG (the commit whose images were pushed)}"
RELEASE="${RELEASE:-streamtrack}"
NAMESPACE="${NAMESPACE:-streamtrack}"
TIMEOUT="${TIMEOUT:-15m}"

# The operator charts StreamTrack depends on (Chart.yaml): Strimzi (OCI) and Altinity (repo).
helm repo add altinity https://helm.altinity.com --force-update >/dev/null
helm dependency build helm/streamtrack

# --atomic: wait for every Deployment to be ready (new pods pass /readyz before old ones go,
# maxUnavailable 0), run the migration hook, and roll back to the previous revision otherwise.
# shellcheck disable=SC2086
helm upgrade --install "$RELEASE" helm/streamtrack \
    --namespace "$NAMESPACE" --create-namespace \
    --atomic --wait --timeout "$TIMEOUT" \
    --set image.registry="$IMAGE_REGISTRY" --set image.tag="$IMAGE_TAG" \
    ${VALUES:+--values "$VALUES"}
helm status "$RELEASE" --namespace "$NAMESPACE"
