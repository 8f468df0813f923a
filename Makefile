# The two commands of the README: `make demo` and `make test`. Both install what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install jars demo test lint services-up services-down clean

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

test: install
	$(PY) -m pytest -q

# static checks (CI runs them before the tests): ruff's lint rules and its formatter, one configuration in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

services-up: install
	$(VENV)/bin/streamrec services up

services-down: install
	$(VENV)/bin/streamrec services down

clean:
	-$(VENV)/bin/streamrec services down
	rm -rf .streamrec
