# make test: system packages, a virtualenv in .venv, then lint, types and tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: test lint typecheck pytest sysdeps venv bench demo pi-check clean

test: venv lint typecheck pytest

sysdeps:
	@PYTHON=$(PYTHON) sh tools/system-packages.sh

$(BIN)/.installed: pyproject.toml | sysdeps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

venv: sysdeps $(BIN)/.installed

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest -q

bench: venv
	$(BIN)/python bench/audio.py

# A whole conversation with the real daemon and a simulated service: no hardware, no key.
demo: venv
	$(BIN)/swaramd demo

# install.sh and swaramd inside an emulated Raspberry Pi OS userland (ARCH=arm64
# or armhf; root; minutes, not part of test). See docs/install.md.
pi-check:
	@bash tools/pi-check.sh $(ARCH)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
