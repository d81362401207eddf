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

.PHONY: install demo test gpu-check clean

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

# The tests marked `gpu` on a machine with an NVIDIA GPU, within 8 minutes; writes
# benchmarks/results/gpu_check_<time>.md. No install step (a borrowed GPU machine has its own
# torch/CUDA): it uses .venv when there is one, else python3. Without a GPU it stops at once.
GPU_PYTHON ?= $(shell test -x $(PY) && echo $(PY) || echo $(PYTHON))
GPU_CHECK_ARGS ?=
gpu-check:
	@$(GPU_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
