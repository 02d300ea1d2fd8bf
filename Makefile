# Two entry points: `make run` (the dashboard on the demo cohort) and `make test` (the whole suite).
# Both create .venv when missing and reinstall only when a requirements file changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
PYTEST_ARGS ?=

.PHONY: run test lint bench chromium test-keras

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed-run
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed-run
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

# Debian's chromium drives the browser tests; installed only when missing and we are root.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will skip"; \
	  else echo "note: chromium missing and not root; browser tests will skip"; fi; \
	fi

test: $(VENV)/.installed-dev chromium
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .

bench: $(VENV)/.installed-run
	$(PY) -m bnapp bench --json

# bnapp against a real TensorFlow/Keras (tests/keras, marked `keras`; docs/keras.md): a separate
# .venv-keras with tensorflow-cpu (Keras 3), tf-keras (Keras 2) and the few packages bnapp's
# engine needs; no torch.
KERAS_VENV := .venv-keras
KERAS_PY := $(KERAS_VENV)/bin/python

$(KERAS_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_PY) -m pip install --quiet tensorflow-cpu==2.21.0 numpy==2.4.6 pandas==3.1.1 \
	  tf-keras==2.21.0 numba==0.68.1 joblib==1.6.0 pytest==9.2.0 hypothesis==6.170.17
	touch $@

test-keras: $(KERAS_VENV)/.installed
	$(KERAS_PY) -m pytest -m keras tests/keras -p no:cacheprovider -W ignore::UserWarning -rA $(PYTEST_ARGS)
