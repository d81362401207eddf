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

# The device side (core, runtime, export of engines from a bundle, --verify) also runs on
# Python 3.8, the interpreter of JetPack 5's TensorRT 8.5 bindings: `make test` runs its
# torch-free tests under 3.8 too, in .venv38 with the newest cp38 wheels (numpy 1.24,
# onnxruntime 1.19). The 3.8 interpreter is required: pyenv's, or PY38=/path/to/python3.8.
PY38 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python3.8) $(shell command -v python3.8))
VENV38 ?= .venv38
STAMP38 := $(VENV38)/.edgepose-installed
DEPS38 ?= "numpy>=1.23,<1.25" "pillow>=9" "onnxruntime==1.19.2" "onnx>=1.15" "onnxconverter-common>=1.14" \
	"pytest>=7" "pytest-timeout>=2" "scipy>=1.10" "hypothesis>=6.80" "psutil>=5.9"
TESTS38 ?= tests/runtime/test_torch_free.py tests/runtime/test_runners.py tests/runtime/test_bundles.py \
	tests/runtime/test_spec.py tests/runtime/test_robust_bundle.py tests/runtime/test_pipeline.py \
	tests/runtime/test_cli.py tests/runtime/test_estimator.py tests/runtime/test_filter.py \
	tests/runtime/test_sinks_sources.py tests/runtime/test_cuda_probe.py tests/runtime/test_backend_traits.py \
	tests/runtime/test_manifest_model.py tests/runtime/test_cuda_tensorrt.py tests/export/test_verify.py \
	tests/export/test_tensorrt_plan.py tests/export/test_tensorrt_decisions.py \
	tests/export/test_tensorrt_inspector.py tests/export/test_graph_lint.py tests/runtime/test_camera_route.py tests/core/test_resample.py \
	tests/runtime/test_stage_imports.py tests/core/test_interrupts.py tests/runtime/test_interrupted_imports.py \
	tests/runtime/test_late_interrupt.py tests/runtime/test_optional_deps_early.py

.PHONY: install demo test test38 gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q $(TORCH)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

# The main job on the built-in synthetic scene: render -> train -> export -> bench.
demo: $(STAMP)
	$(VENV)/bin/edgepose-demo --out $(DEMO_OUT)

# The test suite, then the device-side tests under Python 3.8. pytest's exit code 5 (no tests
# collected) counts as a failure.
test: $(STAMP) $(STAMP38)
	@$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing"; exit 1; fi; \
	test $$rc -eq 0 || exit $$rc; \
	echo "make test: device-side tests under Python 3.8 (JetPack 5)"; \
	$(VENV38)/bin/python -m pytest -q -p no:cacheprovider $(TESTS38); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no Python 3.8 tests - failing"; exit 1; fi; \
	exit $$rc

test38: $(STAMP38)
	$(VENV38)/bin/python -m pytest -q -p no:cacheprovider $(TESTS38)

$(STAMP38): pyproject.toml Makefile
	@test -n "$(PY38)" && test -x "$(PY38)" || { echo "make test: Python 3.8 is required for the JetPack 5 tests and was \
	not found (looked in ~/.pyenv/versions/3.8*/bin and PATH); install it (pyenv install 3.8.18) or pass \
	PY38=/path/to/python3.8" >&2; exit 1; }
	test -x $(VENV38)/bin/python || $(PY38) -m venv $(VENV38)
	$(VENV38)/bin/python -m pip install --disable-pip-version-check -q $(DEPS38)
	$(VENV38)/bin/python -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP38)

# The tests marked `gpu` on a machine with an NVIDIA GPU, within 8 minutes; writes
# benchmarks/results/gpu_check_<time>.md. No install step (a borrowed GPU machine has its own
# torch/CUDA): it uses .venv when there is one, else python3. Without a GPU it stops at once.
GPU_PYTHON ?= $(shell test -x $(PY) && echo $(PY) || echo $(PYTHON))
GPU_CHECK_ARGS ?=
gpu-check:
	@$(GPU_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) $(VENV38) runs .pytest_cache
