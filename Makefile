# The two commands: `make demo` and `make test`. Each creates .venv with the
# machine's python3 and installs the project into it when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-pure profile conformance compat clean compiled test-compiled

# The compiled build (pystack/lib/compiled.py): the same source with its kernel compiled by
# mypyc, installed (not editable) into its own venv, rebuilt when a source file changes.
CVENV := .venv-compiled
CPY := $(CVENV)/bin/python
CSTAMP := $(CVENV)/.installed
# mypyc is part of mypy; pinned, so that a new release changes neither what compiles nor how.
MYPY_VERSION := 2.4.1
SOURCES := $(shell find pystack -name '*.py') pyproject.toml setup.py mypyc.ini Makefile

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m pystack demo

# pytest exits 5 when it collects no test; that is a failure of the suite, not a pass.
test: $(STAMP)
	$(PY) -m pytest -q

# With GCC (10 or later: -fprofile-partial-training) the build is profile-guided: built
# instrumented, trained (benchmarks/train.py), built again with the profile.
# `make compiled PGO=0` builds once, without a profile; so does any other compiler.
BUILD_CC := $(shell $(PYTHON) -c "import os, sysconfig; \
	print(os.environ.get('CC') or sysconfig.get_config_var('CC') or 'cc')" 2>/dev/null)
PGO ?= $(shell case "$(BUILD_CC)" in (*gcc*) echo 'int x;' | $(BUILD_CC) \
	-fprofile-partial-training -x c -c - -o /dev/null 2>/dev/null && echo 1 || echo 0;; \
	(*) echo 0;; esac)
PGO_DIR := $(CURDIR)/$(CVENV)/pgo
CINSTALL := PYSTACK_COMPILE=1 $(CPY) -m pip install --quiet --no-build-isolation --no-deps \
	--force-reinstall .

$(CSTAMP): $(SOURCES)
	$(PYTHON) -m venv $(CVENV)
	$(CPY) -m pip install --quiet --upgrade pip setuptools 'mypy==$(MYPY_VERSION)'
	$(CPY) -m pip install --quiet '.[test]'
	rm -rf build $(PGO_DIR)
	mkdir -p $(CVENV)/bench && ln -sfn $(CURDIR)/benchmarks $(CVENV)/bench/benchmarks
ifeq ($(PGO),1)
	PYSTACK_COMPILE=1 PYSTACK_PGO=generate:$(PGO_DIR) $(CPY) setup.py --quiet build \
		--build-lib build/train
	PYTHONPATH=build/train:$(CVENV)/bench $(CPY) -P -m benchmarks.train
	rm -rf build/train build/temp.*
	PYSTACK_PGO=use:$(PGO_DIR) $(CINSTALL)
else
	$(CINSTALL)
endif
	touch $(CSTAMP)

compiled: $(CSTAMP)

# The suite against the compiled build. -P keeps this tree's pystack/ off sys.path, so the
# tests import the installed, compiled one (tests/lib/test_compiled.py checks that they do).
test-compiled: $(CSTAMP)
	PYSTACK_EXPECT_COMPILED=1 $(CPY) -P -m pytest -q

# Benchmarks beside anchors measured in the same run; prints a table, writes
# benchmarks/results.json. Not part of `make test`. Measures the compiled build;
# `make bench-pure` the plain Python one.
# (benchmarks/ reaches the compiled venv's python through a path holding only it.) Where the
# compiled build cannot be made (no C compiler), it says so and measures the plain one.
bench:
	@if $(MAKE) --no-print-directory compiled; then \
		PYTHONPATH=$(CVENV)/bench $(CPY) -P -m benchmarks; \
	else echo "bench: no compiled build (see above); measuring the plain Python build"; \
		$(MAKE) --no-print-directory bench-pure; fi

bench-pure: $(STAMP)
	$(PY) -m benchmarks

# One figure under cProfile, e.g. `make profile BENCH=udp_pairs` (`$(PY) -m benchmarks --list`).
profile: $(STAMP)
	$(PY) -m benchmarks.profile $(BENCH)

# Linux's packetdrill corpus, read from ../shared (GPLv2 data, never copied here); a report,
# not a gate.
conformance: $(STAMP)
	@if [ -d ../shared/conformance/packetdrill/gtests ]; then \
		$(PY) -m pystack.packetdrill --report ../shared/conformance/packetdrill/gtests; \
	else echo "conformance: ../shared/conformance/packetdrill not found; skipping"; fi

# Unmodified programs from each ecosystem, on the real kernel's 127.0.0.1 and on pystack.
compat: $(STAMP)
	$(PY) compat/run.py

clean:
	rm -rf $(VENV) $(CVENV) build *.egg-info
