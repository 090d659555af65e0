# Two entry points matter (see README Quickstart): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint deps bench lab-docs clean

# Quiet: pip's and the build backend's chatter goes to $(VENV)/install.log, shown only on failure.
$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first run only, about 30 s; details in $(VENV)/install.log)"
	@# Debian's python3 ships venv separately; install it when we are allowed to.
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	@{ $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -e '.[dev]'; } \
		> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; echo "make venv: pip install failed (above)"; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/groupchat demo

lint: $(STAMP)
	$(VENV)/bin/ruff check groupchat server tests
	$(VENV)/bin/mypy groupchat server
	$(VENV)/bin/lint-imports

# System packages for the tests (redis-server, tmux). Outside CI a failed install is tolerated: the
# Redis-backed relay tests and the real-terminal test then skip with a reason; in CI (CI=true) they
# must run.
deps:
	bash .ci/install-deps || [ -z "$$CI" ]

# The short headless demo must end with every peer agreeing on every epoch (exit status 0).
test: $(STAMP) lint deps
	$(VENV)/bin/groupchat demo --headless --peers 3 --seconds 6 --log-dir .demo-logs
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/groupchat bench rekey

# docs/lab.md's tables and docs/lab/*.svg, measured again (needs the `lab` extra: matplotlib).
lab-docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,lab]'
	$(PY) -m groupchat.lab.sim.figures docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
