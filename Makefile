# StreamTrack — every command sets itself up: a virtualenv in .venv, the package and its tools.
# `make dev` runs the pipeline on this machine; `make test` runs the test suite (CI calls it).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: dev test test-fast lint docs audit bench install kafka go-tools smoke-grpc clean sdk-clients lint-deploy k8s images push-images deploy smoke rollback

$(STAMP): pyproject.toml setup.py constraints.txt
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || scripts/apt-install python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,test]'
	@touch $(STAMP)

# The dashboard's browser test drives Debian's Chromium (Playwright's own download is not used).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	scripts/apt-install chromium

install: $(STAMP)

dev: $(STAMP) kafka
	$(BIN)/streamtrack dev

# Apache Kafka's jars from Maven Central (pinned in streamtrack/kafka/apache/pom.xml), cached by
# version under ~/.cache/streamtrack (STREAMTRACK_CACHE_DIR): the broker of the tests and of `make dev`.
kafka: $(STAMP)
	@command -v mvn >/dev/null || scripts/apt-install maven
	$(BIN)/python -m streamtrack.kafka.apache

# The official Segment/RudderStack SDKs the Segment-compatible API is tested with (.sdk/, pinned in tests/sdk/).
sdk-clients:
	PYTHON=$(PYTHON) scripts/sdk-clients

# The test bed's Go tools, built from the Go module proxy (pinned in scripts/gotools.py) and cached by
# version under ~/.cache/streamtrack (STREAMTRACK_CACHE_DIR): etcd, kube-apiserver, kubectl and Helm
# (tests/e2e), promtool and Prometheus (the alerts), grpcurl (the gRPC API) and SeaweedFS's `weed` (the
# archive's object store). One tool: `.venv/bin/python scripts/gotools.py build helm`. Cold: about 25 minutes on
# 2 free cores, all tools; cached: nothing to do.
go-tools: $(STAMP)
	$(BIN)/python scripts/gotools.py build

test: $(STAMP) lint docs $(CHROMIUM) sdk-clients kafka go-tools
	$(BIN)/pytest -q
	$(BIN)/python scripts/dependency_audit.py

# The unit tests alone: nothing started (no broker, no cluster, no browser), well under a minute.
test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit

# ruff on the whole tree, configured in pyproject.toml ([tool.ruff]); a prerequisite of `make test`.
lint: $(STAMP)
	$(BIN)/ruff check .

# The docs site from docs/ into site/ (mkdocs-material, pinned in constraints.txt); --strict: a broken
# link, anchor or included snippet fails the build. A prerequisite of `make test`.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Known vulnerabilities of the pinned dependencies (pip-audit; needs PyPI's JSON API or osv.dev).
# Offline it prints a banner and passes; AUDIT_STRICT=1 makes an audit that could not run fail.
# Bandit (static analysis) runs inside the suite: tests/unit/test_security_checks.py.
audit: $(STAMP)
	$(BIN)/python scripts/dependency_audit.py

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# Deployment (docs/deploy.md). lint-deploy and k8s run offline; tests/deploy runs
# the same checks in `make test`. images/push-images/deploy/smoke are Jenkins' stages and need
# docker, helm and a cluster: IMAGE_REGISTRY, IMAGE_TAG (default: the commit), RELEASE, NAMESPACE, API_URL.
IMAGE_TAG ?= $(shell git rev-parse --short HEAD)
export IMAGE_TAG

lint-deploy: $(STAMP)
	$(BIN)/python scripts/chart_tool.py check
	$(BIN)/python scripts/chart_tool.py k8s --check
	$(BIN)/hadolint Dockerfile.api Dockerfile.worker
	$(BIN)/shellcheck scripts/*.sh
	$(BIN)/python scripts/terraform_check.py

k8s: $(STAMP)
	$(BIN)/python scripts/chart_tool.py k8s

images:
	scripts/build-images.sh

push-images:
	scripts/build-images.sh --push

deploy:
	scripts/deploy.sh

smoke: $(STAMP)
	$(BIN)/streamtrack smoke --url "$$(scripts/api-url.sh)"

smoke-grpc: $(STAMP)
	$(BIN)/python scripts/grpc_smoke.py --url "$$(scripts/api-url.sh)"

rollback:
	helm rollback "$${RELEASE:-streamtrack}" --namespace "$${NAMESPACE:-streamtrack}" --wait

clean:
	rm -rf $(VENV) .streamtrack .pytest_cache site
