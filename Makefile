# The two commands of README.md. Both create .venv and install what they need on a fresh
# machine, and are quick when it is already installed (the stamp file remembers).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to the release this project is tested with; override on other platforms,
# e.g. `make test TORCH="torch torchvision"` or the JetPack wheels on a Jetson.
TORCH ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= train,export,plots,ros,dev
STAMP := $(VENV)/.edgepose-installed
DEMO_OUT ?= runs/demo
PYTEST_ARGS ?=

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q $(TORCH)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

# The main job on the built-in synthetic scene: render -> train -> export -> bench.
demo: $(STAMP)
	$(VENV)/bin/edgepose-demo --out $(DEMO_OUT)

# The test suite. pytest's exit code 5 (no tests collected) counts as a failure.
test: $(STAMP)
	@$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing"; exit 1; fi; \
	exit $$rc

clean:
	rm -rf $(VENV) runs .pytest_cache
