# Two commands for a new machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest docs bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

test: lint typecheck pytest docs

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(INSTALLED)
	$(BIN)/mypy --strict tenure

pytest: $(INSTALLED)
	$(BIN)/python -m pytest

# The site goes to site/ (gitignored); strict, so a broken link or reference fails the build.
docs: $(INSTALLED)
	$(BIN)/mkdocs build --strict --site-dir site

demo: $(INSTALLED)
	$(BIN)/python examples/demo.py

clean:
	rm -rf $(VENV) site .mypy_cache .pytest_cache .ruff_cache .hypothesis
