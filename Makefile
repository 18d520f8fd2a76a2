# `make demo` and `make test` each create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch; GPU users: see README.md.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo_output

.PHONY: demo test venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/strokezoo demo --out $(DEMO_DIR)

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist worksteal -q tests

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
