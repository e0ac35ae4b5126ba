# elm_jax front door. Every target uses the repository's .venv and creates it when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS ?= test
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
SWEEP ?= sweeps/configs/default.py
# Each sweep gets its own results directory by default: sweep_runs/<config name>.
SWEEP_NAME = $(basename $(notdir $(firstword $(subst :, ,$(SWEEP)))))
SWEEP_DIR ?= sweep_runs/$(SWEEP_NAME)
# The default and law sweeps read only the embedded SHD default, so they build only that one;
# the enwiki sweep only enwiki-sample; any other sweep prepares every embedded default set.
SWEEP_PREPARE ?= $(if $(filter default law,$(SWEEP_NAME)),--only shd,$(if $(filter enwiki,$(SWEEP_NAME)),--only enwiki,))
PYTEST_ARGS ?=
# The suite runs in worker processes, one per core up to 4, each test file whole in one worker
# (module fixtures are built once). Most tests wait on XLA compiles, which use one core each.
# PYTEST_WORKERS=0 runs it in this process.
PYTEST_WORKERS ?= auto

export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.cache/jax
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS ?= 0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES ?= -1

.PHONY: install kernel test lint format sweep report bench data clean browser notebook fashion-mnist bench-tasks

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m elm_jax.network.fused_build
	@touch $@

# The fused CPU kernel of the ELM network, compiled for the installed jaxlib (a cached build is
# reused; without a compiler this says so and the network runs on the XLA path).
kernel: install
	$(PY) -m elm_jax.network.fused_build

test: install kernel browser fashion-mnist
	$(PY) -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

# ruff checks import order (rule I); tests/test_layering.py that no module imports a higher layer.
lint: install
	$(PY) -m ruff check elm_jax sweeps analysis tests bench probes
	$(PY) -m ruff format --check elm_jax sweeps analysis tests bench probes
	$(PY) -m pytest -q -p no:randomly tests/test_layering.py

format: install
	$(PY) -m ruff check --fix elm_jax sweeps analysis tests bench probes
	$(PY) -m ruff format elm_jax sweeps analysis tests bench probes

data: install fashion-mnist
	$(PY) -m elm_jax.data.prepare

# The default sweep (see sweeps/configs/default.py for its measured time), or any other: make sweep SWEEP=tiny
# (make sweep SWEEP=law: the sequential scaling-law sweep, sweeps/configs/law.py)
# Runs again resume (same SWEEP_DIR); ends with the results table and the analysis report.
sweep: install kernel
	$(PY) -m elm_jax.data.prepare $(SWEEP_PREPARE)
	$(PY) -m sweeps.run --sweep $(SWEEP) --dir $(SWEEP_DIR) $(SWEEP_ARGS)
	@$(PY) -c "import pandas as p; f = p.read_parquet('$(SWEEP_DIR)/results.parquet'); \
	print(f.sort_values(['slice','budget','N','seed'])[['slice','budget','arch','N','d_m','k_c','P_core','seed','status','final_val_loss','final_val_metric','input_blind_val_loss','final_test_loss']].to_string(index=False))"
	@$(MAKE) --no-print-directory -o install report SWEEP_DIR=$(SWEEP_DIR)

# The HTML report of a sweep directory (default: the one make sweep writes); fails if it fails.
report: install
	@report=$$($(PY) -m analysis.report $(SWEEP_DIR)) && echo "report: $$report"

bench: install
	$(PY) bench/neuron_speed.py
	$(PY) bench/network_speed.py
	$(PY) bench/seed_parallel.py --seeds 4

# Short CPU runs of the single-neuron recipes (elm_jax/configs/neuron_*.py), one JSON line each
# (tasks whose data or task is not available print status "unavailable" and the reason).
bench-tasks: install fashion-mnist
	$(PY) probes/tasks.py $(BENCH_TASKS_ARGS)

# The headless browser of tests/test_explore_browser.py, installed with apt-get when missing and
# we are root (best effort, quiet); without one that test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser: installing chromium with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			>/dev/null 2>&1 || echo "browser: apt-get could not install chromium"; \
	else echo "browser: no chromium and not root: the browser test will be skipped"; fi

# Fashion-MNIST (the sequential-image default, data name scifar_default) from Debian's
# dataset-fashion-mnist package, installed with apt-get when missing and we are root (best
# effort, quiet); otherwise loading it says how to install it or where to put the files.
fashion-mnist:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "fashion-mnist: installing dataset-fashion-mnist with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			dataset-fashion-mnist) >/dev/null 2>&1 || \
			echo "fashion-mnist: apt-get could not install dataset-fashion-mnist"; \
	else echo "fashion-mnist: not installed and not root: scifar_default needs its files"; fi

# The sweep notebook in JupyterLab (installs the notebook extra): make notebook
# (NOTEBOOK_ARGS: more JupyterLab options, e.g. NOTEBOOK_ARGS=--no-browser)
notebook:
	$(MAKE) install EXTRAS=$(EXTRAS),notebook
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(NOTEBOOK_ARGS) \
		analysis/notebooks/explore_sweep.ipynb

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache *.egg-info
