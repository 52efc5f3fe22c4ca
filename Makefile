# kslib: `make lab` opens the course, `make test` runs every test.
# Both install first: a venv in .venv from binder/requirements.txt (the one lock).

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := binder/requirements.txt

# Debian packages for the kernel lab (tests marked `kernel`) and the browser test (tests/browser:
# Debian's chromium, driven by Playwright), and the commands they provide.
SYSTEM_DEPS  := iptables nftables iproute2 conntrack chromium
SYSTEM_CMDS  := iptables-restore nft ip conntrack chromium

NUMBA_CACHE := $(CURDIR)/.cache/numba
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install lab test system-deps clean

help:
	@echo "kslib - Kubernetes Service networking, as executable lessons"
	@echo ""
	@echo "  make lab     install (if needed) and open the course in JupyterLab"
	@echo "  make test    install (if needed) and run every test: unit tests, the lessons"
	@echo "               (papermill, quick mode) and the kernel lab where root + netns allow"
	@echo ""
	@echo "  make install        only build/refresh $(VENV) from $(LOCK)"
	@echo "  make system-deps    Debian packages for the kernel lab and the browser test (root + apt-get only)"
	@echo "  make clean          remove $(VENV) and caches"
	@echo ""
	@echo "  PYTHON=$(PYTHON) (needs 3.11+)   PYTEST_ARGS='...' passes extra pytest arguments"

$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kslib needs Python 3.11+; this is " + sys.version.split()[0] + " (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# Re-runs only when the lock or pyproject.toml is newer than the stamp.
$(STAMP): $(LOCK) pyproject.toml | $(VPY)
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -r $(LOCK)
	$(VPY) -m pip install --no-deps -e .
	@touch $@

install: $(STAMP)

# Jupyter refuses to run as root unless told; only then is --allow-root added.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: install
	$(VPY) -m kslib.warmup
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 $(LAB_ROOT) --ServerApp.root_dir=notebooks \
		$(if $(wildcard notebooks/00_welcome.ipynb),notebooks/00_welcome.ipynb,notebooks/)

# Never fails when it cannot act (not root, no apt-get); fails if an install it attempts fails.
system-deps:
	@set -e; PATH="$$PATH:/usr/sbin:/sbin"; missing=""; \
	for c in $(SYSTEM_CMDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then \
		echo "system-deps: skipped: $(SYSTEM_CMDS) already present"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "system-deps: skipped: not root (missing:$$missing); kernel-lab and browser tests will skip"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "system-deps: skipped: no apt-get (missing:$$missing); kernel-lab and browser tests will skip"; \
	else \
		echo "system-deps: installing $(SYSTEM_DEPS) (missing:$$missing)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update; \
		apt-get install -y --no-install-recommends $(SYSTEM_DEPS); \
	fi

# pytest exit code 5 (no tests collected) is turned into a failure. The property tests run Hypothesis's
# "ci" profile (tests/conftest.py: 300 generated clusters per test and mode, derandomized). The two workers
# steal work from each other: xdist's default hands out the tail of the collection (the long property
# tests) in one chunk, and one worker then ran them all while the other sat idle.
test: install system-deps
	@mkdir -p $(NUMBA_CACHE)
	@# compile the numba kernels once, so the two pytest workers load them from the cache
	NUMBA_CACHE_DIR=$(NUMBA_CACHE) $(VPY) -m kslib.warmup
	@set +e; \
	NUMBA_CACHE_DIR=$(NUMBA_CACHE) KSLIB_QUICK=1 $(VPY) -m pytest -n 2 --dist worksteal tests/ --hypothesis-profile ci $(PYTEST_ARGS); \
	rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing"; exit 1; fi; \
	exit $$rc

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis tests/artifacts build *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
