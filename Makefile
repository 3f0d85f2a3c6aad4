# medaug: `make demo` and `make test` work on a fresh clone; each creates .venv if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARCHIVE := fixtures/archive
DEMO_OUT := out/demo

.PHONY: demo test bench tools archive clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[codecs,test]'
	touch $(STAMP)

# The bundled synthetic archive is generated from code (fixtures/generate.py), never copied.
$(ARCHIVE).json: $(STAMP) $(wildcard fixtures/*.py)
	rm -rf $(ARCHIVE) $(ARCHIVE).json
	$(PY) -m fixtures.generate $(ARCHIVE)

archive: $(ARCHIVE).json

demo: $(ARCHIVE).json
	$(VENV)/bin/medaug inspect $(ARCHIVE)

test: $(STAMP) $(ARCHIVE).json
	$(PY) -m mypy
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.run

# External validators used by the tests (dciodvfy from dicom3tools, dcm2niix); needs root.
tools:
	command -v dciodvfy >/dev/null && command -v dcm2niix >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools dcm2niix)

clean:
	rm -rf $(VENV) out $(ARCHIVE) .mypy_cache .pytest_cache
