# topk_sae: the README's two commands are `make demo` and `make test`; both install first.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# Offline and reproducible: no hub, no telemetry, one BLAS thread for stable test timings.
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled \
           HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
TEST_ENV := $(OFFLINE) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: install demo test test-fast lint-nbs export clean-nbs readme help bench docs

help:
	@echo "make demo   install, then train and evaluate a TopK SAE on the embedded default (runs/demo/)"
	@echo "make test   install, then run the whole test suite (notebooks, then pytest)"
	@echo "make docs   build the docs site offline into _site/ (open _site/index.html; search in the sidebar); nbdev_docs where Quarto is installed"
	@echo "make bench  benchmarks against SAELens and sparsify (installed in .venv-bench), written to bench/results.md"

install:
	VENV=$(VENV) bash tools/install.sh

demo: install
	$(OFFLINE) $(BIN)/topk-sae demo $(ARGS)

# The nbdev checks CI makes: notebooks clean, library exported, README regenerated; then ruff (ruff.toml: its
# default rules and 120 columns) on the library and the tests. The tests follow in `test`.
lint-nbs: install
	VENV=$(VENV) bash tools/check_clean.sh
	$(BIN)/ruff check topk_sae tests

test: lint-nbs docs
	$(TEST_ENV) $(BIN)/nbdev_test --n_workers 2
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider tests
	# the kernels' CUDA op sequence, run on the CPU (TOPK_SAE_KERNELS=cuda-path), with the GPU checks' logic
	$(TEST_ENV) TOPK_SAE_KERNELS=cuda-path $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_kernels.py \
		tests/test_recipe.py tests/test_properties.py tests/test_resume.py tests/test_distributed.py
	# the GPU checks' logic, on the CPU (on a GPU the line above already ran them on CUDA)
	$(TEST_ENV) TOPK_SAE_TEST_DEVICE=cpu $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_gpu.py
	# the Triton kernels in Triton's interpreter, against the torch reference (and compiled ahead of time for sm_75/80/90)
	$(TEST_ENV) TRITON_INTERPRET=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_triton.py

# The docs site, offline: nbdev's processed notebooks (_proc/) rendered by nbconvert into _site/ (tests/test_docs.py
# opens every page). With Quarto installed, `nbdev_docs` / `nbdev_preview` render the same notebooks instead.
docs: install
	$(TEST_ENV) $(BIN)/python tools/build_docs.py

test-fast: install
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests

export:
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(BIN)/python tools/make_readme.py

# Benchmarks (run on purpose, never in CI): the peers live in .venv-bench so their pins never touch .venv.
# Timed sections first, on an otherwise idle machine; the long sample-efficiency runs last.
BENCH_ENV := $(OFFLINE) OMP_NUM_THREADS=$(or $(THREADS),2)
bench: install
	VENV=$(VENV) bash tools/install_bench.sh
	$(BENCH_ENV) $(BIN)/python bench/data.py
	$(BENCH_ENV) .venv-bench/bin/python bench/run.py train --threads $(or $(THREADS),2) $(BENCH_ARGS)
	$(BENCH_ENV) $(BIN)/python bench/run.py harvest ablation many --threads $(or $(THREADS),2) $(BENCH_ARGS)
	$(BENCH_ENV) $(BIN)/python bench/tp.py
	$(BENCH_ENV) .venv-bench/bin/python bench/saebench_check.py
	$(BENCH_ENV) .venv-bench/bin/python bench/saebench_evals.py
	$(BENCH_ENV) .venv-bench/bin/python bench/run.py efficiency --combine --threads $(or $(THREADS),2) $(BENCH_ARGS)
