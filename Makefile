# medaug: `make demo` and `make test` work on a fresh clone; each creates .venv if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARCHIVE := fixtures/archive
DEMO_OUT := out/demo

.PHONY: demo demo-dask cluster test bench tools tables archive clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dask,nifti]'
	# Compile the resampling kernels into numba's cache now, so the first run does not.
	$(PY) -m medaug.augment.compile
	touch $(STAMP)

# The bundled synthetic archive is generated from code (fixtures/generate.py), never copied.
$(ARCHIVE).json: $(STAMP) $(wildcard fixtures/*.py)
	rm -rf $(ARCHIVE) $(ARCHIVE).json
	$(PY) -m fixtures.generate $(ARCHIVE)

archive: $(ARCHIVE).json

DEMO_KEY := out/demo.key
DEMO_POLICY := policies/ct-chest-conservative.yaml

# The main job on the bundled archive: key, run under the approved CT policy, verify, summary.
demo: $(ARCHIVE).json
	mkdir -p out
	test -f $(DEMO_KEY) || $(VENV)/bin/medaug keygen $(DEMO_KEY)
	rm -rf $(DEMO_OUT)
	$(VENV)/bin/medaug inspect $(ARCHIVE) || test $$? -eq 3
	$(VENV)/bin/medaug run $(DEMO_POLICY) $(ARCHIVE) $(DEMO_OUT) --key $(DEMO_KEY); \
	  status=$$?; test $$status -eq 0 -o $$status -eq 3 || exit $$status
	$(VENV)/bin/medaug audit verify $(DEMO_OUT)
	rm -rf out/demo-nnunet
	$(VENV)/bin/medaug export $(DEMO_OUT) --format nnunet --label 0 -o out/demo-nnunet
	$(VENV)/bin/medaug audit verify out/demo-nnunet --against $(DEMO_OUT)
	@echo "demo dataset: $(DEMO_OUT)  (audit log: $(DEMO_OUT)/audit/log.jsonl); nnU-Net export: out/demo-nnunet"

# Regenerate the de-identification action table from ../shared/reference (PS3.15 Table E.1-1).
tables: $(STAMP)
	$(PY) scripts/generate_deid_table.py
	PYTHONPATH=. $(PY) scripts/generate_phrase_list.py

test: $(STAMP) $(ARCHIVE).json tools
	$(PY) -m mypy
	$(PY) -m pytest

# Peer libraries for the benchmarks, each set in an environment of its own (never medaug's).
# torch is installed alone first, pinned, so pip takes the CPU build; the elasticdeform 0.5.1
# wheel is built against numpy 1 and is rebuilt from source to import under numpy 2.
.venv-bench/.installed:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet torch==2.13.0
	.venv-bench/bin/pip install --quiet torchio monai elasticdeform numpy scipy setuptools wheel
	.venv-bench/bin/pip install --quiet --force-reinstall --no-deps --no-binary elasticdeform --no-build-isolation elasticdeform==0.5.1
	touch $@

.venv-bench-deid/.installed:
	$(PYTHON) -m venv .venv-bench-deid
	.venv-bench-deid/bin/pip install --quiet dicognito dicom-anonymizer deid
	touch $@

# The composite peer (benchmarks/peer_composite.py: pydicom, dicognito and TorchIO in one script)
# needs dicognito beside TorchIO, so .venv-bench gets it too, with the pydicom medaug runs on.
.venv-bench/.composite: .venv-bench/.installed
	.venv-bench/bin/pip install --quiet pydicom==3.0.2 dicognito==0.19.0
	touch $@

# Every benchmark with its peers, then scaling with workers at one core each (numba reads its
# thread count at start-up, hence a process of its own).
bench: $(STAMP) .venv-bench/.installed .venv-bench/.composite .venv-bench-deid/.installed
	$(PY) -m benchmarks.run
	NUMBA_NUM_THREADS=1 $(PY) -m benchmarks.bench_throughput --configs local1 local2 --rounds 3 \
		--report docs/bench/throughput-per-core.md

# A local Dask cluster for a demo (foreground; Ctrl-C stops it): a scheduler and two single-threaded
# workers on loopback, each with one numba thread so they share the cores instead of fighting over them.
DASK_ADDRESS := tcp://127.0.0.1:8786
cluster: $(STAMP)
	$(VENV)/bin/dask scheduler --host 127.0.0.1 --port 8786 --no-dashboard & sched=$$!; \
	trap 'kill $$sched' EXIT INT TERM; \
	NUMBA_NUM_THREADS=1 $(VENV)/bin/dask worker $(DASK_ADDRESS) --nworkers 2 --nthreads 1 --no-dashboard

# The demo on the cluster started by `make cluster` (in another terminal).
demo-dask: $(ARCHIVE).json
	mkdir -p out
	test -f $(DEMO_KEY) || $(VENV)/bin/medaug keygen $(DEMO_KEY)
	rm -rf out/demo-dask
	$(VENV)/bin/medaug run $(DEMO_POLICY) $(ARCHIVE) out/demo-dask --key $(DEMO_KEY) --scheduler $(DASK_ADDRESS); \
	  status=$$?; test $$status -eq 0 -o $$status -eq 3 || exit $$status
	$(VENV)/bin/medaug audit verify out/demo-dask

# External programs the tests use: dciodvfy (dicom3tools) and dcm2niix, independent DICOM checks,
# chromium, which renders the audit report, and tesseract with the DejaVu fonts, which read and draw
# the planted burned-in text. Installed with apt when missing and run as root;
# elsewhere the tests that need them skip (outside CI) and say why.
TOOLS_PKGS := dicom3tools dcm2niix chromium tesseract-ocr tesseract-ocr-eng fonts-dejavu-core
tools:
	@if command -v dciodvfy >/dev/null && command -v dcm2niix >/dev/null && command -v chromium >/dev/null && command -v tesseract >/dev/null && test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf; then \
	  echo "external tools present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TOOLS_PKGS); \
	else \
	  echo "note: install $(TOOLS_PKGS) (Debian packages) to run the external-validator tests"; \
	fi

clean:
	rm -rf $(VENV) out $(ARCHIVE) .mypy_cache .pytest_cache
