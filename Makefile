# StreamTrack — every command sets itself up: a virtualenv in .venv, the package and its tools.
# `make dev` runs the pipeline on this machine; `make test` runs the test suite (CI calls it).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: dev test bench install clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -P -m venv --help >/dev/null 2>&1 || scripts/apt-install python3-venv
	$(PYTHON) -P -m venv $(VENV)
	$(BIN)/python -P -m pip install --quiet --upgrade pip
	$(BIN)/python -P -m pip install --quiet -c constraints.txt -e '.[dev,test]'
	@touch $(STAMP)

# The dashboard's browser test drives Debian's Chromium (Playwright's own download is not used).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	scripts/apt-install chromium

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/streamtrack dev

test: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -P bench/ingest.py

clean:
	rm -rf $(VENV) .streamtrack .pytest_cache
