# Two commands a new user needs: `make demo` and `make test`. Everything else is plumbing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages the tests talk to for real: an MQTT broker and a pty-linked serial pair.
DEB_PACKAGES := mosquitto socat
# MicroPython (WebAssembly build from npm) runs the portable core beside CPython in the tests.
MPY_DIR := tests/micropython
MPY_STAMP := $(MPY_DIR)/node_modules/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench deps deps-demo venv clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,gpio]'
	touch $(STAMP)

venv: $(STAMP)

# Install the Debian packages when root, otherwise say exactly what is missing.
# The demo needs the broker; the tests also need socat and Node (MicroPython runs in it).
define need_packages
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ "$(2)" = node ]; then \
	  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call need_packages,$(DEB_PACKAGES),node)

deps-demo:
	$(call need_packages,mosquitto,)

$(MPY_STAMP): $(MPY_DIR)/package.json $(MPY_DIR)/package-lock.json
	cd $(MPY_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(MPY_STAMP)

demo: deps-demo $(STAMP)
	$(VENV)/bin/urja demo $(DEMO_ARGS)

test: deps $(STAMP) $(MPY_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: deps $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache $(MPY_DIR)/node_modules
