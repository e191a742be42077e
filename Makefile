# The two commands: `make demo` and `make test`. Each creates .venv with the
# machine's python3 and installs the project into it when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench profile conformance compat clean

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

# Benchmarks beside anchors measured in the same run; prints a table, writes
# benchmarks/results.json. Not part of `make test`.
bench: $(STAMP)
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
	rm -rf $(VENV) build *.egg-info
