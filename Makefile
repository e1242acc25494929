# robustlens: two commands on a fresh machine
#   make demo   install everything into .venv, run the embedded default study, build the report
#   make test   install everything into .venv (and Chromium for the browser test), run lint (ruff, mypy) + tests
# Other targets: make bench (benchmark tables), make meshes / make planted (rebuild shipped data).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    ?= results/demo

.PHONY: demo test lint bench meshes planted clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject.toml (taken from local disk)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/robustlens run --out $(OUT)
	@echo "open $(OUT)/report.html"

test: $(STAMP)
	-bash scripts/install_chromium.sh
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy src
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy src

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

meshes: $(STAMP)
	$(PY) scripts/make_demo_meshes.py

planted: $(STAMP)
	$(PY) scripts/make_planted_cue.py

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
