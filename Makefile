# robustlens: two commands on a fresh machine
#   make demo   install everything into .venv, run the embedded default study, build the report
#   make test   install everything into .venv (and Chromium for the browser test), run lint (ruff, mypy) + tests
#   make whitebox  add the optional white-box backend (Mitsuba 3 + system libLLVM 19); then
#               make test also runs its known-answer tests (skipped, with the reason, without it)
# Other targets: make bench (benchmark tables), make meshes / make planted (rebuild shipped data).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    ?= results/demo

WB_STAMP := $(VENV)/.whitebox-stamp

.PHONY: demo test lint bench meshes planted clean install whitebox

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject.toml (taken from local disk)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Optional white-box backend: Dr.Jit's CPU backend needs a system libLLVM >= 17 (Debian 12
# ships 15, which aborts the process); apt-get installs libllvm19 when run as root (or with
# sudo), otherwise this says what to install.
whitebox: $(WB_STAMP)

$(WB_STAMP): $(STAMP) pyproject.toml
	bash scripts/install_libllvm.sh
	$(PY) -m pip install -q -e ".[dev,whitebox]"
	touch $(WB_STAMP)

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
