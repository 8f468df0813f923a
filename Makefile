# The two commands of the README: `make demo` and `make test`. Both install what they need first.
# `make test-fast` is the tier without servers and slow tests, for between edits (docs/development.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install jars demo test test-fast lint services-up services-down clean

install: $(STAMP) jars

# Re-runs only when pyproject.toml changes. torch is installed first on its own, pinned, so no resolver
# step ever reaches for a CUDA build. Everything else, the item-text encoder included, is in pyproject.toml.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[local,dev]'
	touch $(STAMP)

# The apache stack's jars (Maven, pinned in streamrec/tools/servers/pom.xml), cached per machine; quick when done.
# Says what to install, or to choose STREAMREC_LOCAL_STACK=light, when Java or Maven is missing.
jars: $(STAMP)
	$(VENV)/bin/streamrec services install

demo: install
	$(VENV)/bin/streamrec demo

# everything, against the local Apache Kafka and Neo4j; the 15 slowest tests listed at the end
test: install
	$(PY) -m pytest -q --durations=15

# no server started, no slow test: under a minute on a 2-core machine. One torch thread: the tier's tensors are
# small, and beside another run on 2 cores a second thread mostly waits (46 s instead of 77 s, docs/development.md).
test-fast: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not servers and not slow"

# static checks (CI runs them before the tests): ruff's lint rules and its formatter, then mypy (strict on stream/,
# graph_store/ and streamrec/runtime/); one configuration for each in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy

services-up: install
	$(VENV)/bin/streamrec services up

services-down: install
	$(VENV)/bin/streamrec services down

clean:
	-$(VENV)/bin/streamrec services down
	rm -rf .streamrec
