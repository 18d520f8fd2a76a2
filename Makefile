# `make demo` and `make test` each create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch; GPU users: see README.md.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo_output

.PHONY: demo test test-monailabel venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/strokezoo demo --out $(DEMO_DIR)

# Two pytest workers on two cores: one compute thread per process (OMP_NUM_THREADS=1), so that a worker and the
# bundle run it waits on do not start four threads on two cores (docs/benchmarks.md).
test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist worksteal -q tests

# MONAI Label's annotate, train and infer loop with every exported bundle (integration/test_monailabel.py;
# docs/monailabel.md). Not part of `make test`: MONAI Label 0.8.5 and its dependencies (SAM 2, torchvision and the
# CUDA build of PyTorch it matches: PyPI has no CPU torchvision) take about 8 GB, installed in their own environment,
# which has no strokezoo (the exported bundles run on their vendored copy).
MONAILABEL_VENV := .venv-monailabel

$(MONAILABEL_VENV)/.installed: integration/monailabel-constraints.txt
	$(PYTHON) -m venv $(MONAILABEL_VENV)
	$(MONAILABEL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MONAILABEL_VENV)/bin/python -m pip install --quiet -c integration/monailabel-constraints.txt "monailabel==0.8.5"
	touch $@

test-monailabel: $(VENV)/.installed $(MONAILABEL_VENV)/.installed
	MONAILABEL=$(MONAILABEL_VENV)/bin/monailabel $(PY) -m pytest -q -s -p no:cacheprovider integration/test_monailabel.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
