# Two commands a new user needs: `make demo` and `make test`. Everything else is plumbing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages the tests talk to for real: an MQTT broker, a pty-linked serial pair, the
# browser the owner's page is tested in (Playwright drives Debian's chromium; Hindi needs a font),
# and systemd's own checker for the service unit (systemd-analyze verify).
DEB_PACKAGES := mosquitto socat chromium fonts-lohit-deva systemd
# MicroPython (WebAssembly build from npm) runs the portable core beside CPython in the tests.
MPY_DIR := tests/micropython
MPY_STAMP := $(MPY_DIR)/node_modules/.installed
PYTEST_ARGS ?=
# What test-fast leaves out: anything that starts the runtime, a broker or a browser, or is slow.
FAST_MARKERS := not slow and not runtime and not broker and not browser
# Folders ruff checks; agent/, protocols/ and tests/ join once their remaining findings are fixed.
LINT_PATHS ?= agent drivers protocols board tools tests bench

.PHONY: demo test test-fast lint wheel-check bench deps deps-demo venv clean check-arm64

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

test: lint deps $(STAMP) $(MPY_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory wheel-check

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)

# What a site gets from `pip install`: the wheel alone, in a fresh venv outside the checkout,
# run from another directory, so nothing can be read from beside the sources. The wheel is
# built from a copy of the tracked and new files (a stale build/ never ships).
wheel-check: $(STAMP)
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/src" "$$tmp/run"; \
	git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$$tmp/src"; \
	echo "wheel-check: building the wheel"; \
	$(PY) -m pip wheel --quiet --no-deps -w "$$tmp/dist" "$$tmp/src"; \
	$(PY) .ci/wheel_contents.py "$$tmp"/dist/urja-*.whl; \
	echo "wheel-check: installing it with its dependencies into $$tmp/venv"; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$$tmp"/dist/urja-*.whl; \
	cd "$$tmp/run"; \
	echo "wheel-check: urja selftest --board sim"; \
	"$$tmp/venv/bin/urja" selftest --board sim; \
	echo "wheel-check: urja run --board sim --sim-car"; \
	"$$tmp/venv/bin/urja" run --board sim --sim-car --speed 120 > run.out; \
	grep -q '"receipt_id"' run.out || { echo "wheel-check: urja run printed no receipt" >&2; cat run.out >&2; exit 1; }; \
	grep '"receipt_id"\|"energy_wh"' run.out | head -2; \
	echo "wheel-check: urja demo --local"; \
	"$$tmp/venv/bin/urja" demo --local --dir "$$tmp/run/demo" --speed 120 --limit-wh 200; \
	echo "wheel-check: the installed wheel runs"

bench: deps $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# Not part of `make test`: a Debian 12 arm64 root file system under qemu-user, the arm64 bundle
# installed in it with no network, the self-test and a simulated charge (.ci/check_arm64.sh).
check-arm64: $(STAMP)
	$(call need_packages,debootstrap qemu-user-static,)
	PY=$(PY) .ci/check_arm64.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache $(MPY_DIR)/node_modules
