# Every target builds .venv first, so a fresh machine needs only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench docs lambda-package clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/guard demo

test: $(STAMP)
	$(BIN)/ruff check guard checks rollback tests bench deploy
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check guard checks rollback tests bench deploy

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

docs: $(STAMP)
	$(BIN)/python -m guard.docs > docs/checks.md

lambda-package: $(STAMP)
	$(BIN)/python deploy/package.py build/lambda

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache bench/results
