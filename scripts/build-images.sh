#!/bin/sh
# Build (and with --push, push) the StreamTrack images tagged by commit.
#   IMAGE_REGISTRY=europe-west1-docker.pkg.dev/my-project/streamtrack IMAGE_TAG=$(git rev-parse --short HEAD) scripts/build-images.sh [--push]
# Jenkins logs in to the registry first (docker login with its credentials); nothing is read from the repo.
set -eu
cd "$(dirname "$0")/.."
: "${IMAGE_REGISTRY:?set IMAGE_REGISTRY, e.g. ghcr.io/you}"
IMAGE_TAG="${IMAGE_TAG:-$(git rev-parse --short HEAD)}"
for component in api worker; do
    image="$IMAGE_REGISTRY/streamtrack-$component:$IMAGE_TAG"
    docker build --pull --file "Dockerfile.$component" --tag "$image" \
        --label "org.opencontainers.image.revision=$(git rev-parse HEAD)" .
    if [ "${1:-}" = "--push" ]; then
        docker push "$image"
    fi
done
