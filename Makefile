# Two commands do all set-up (see README):  make demo   and   make test
# Both create .venv and install the project into it; reinstall only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench release model clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)        ## the main job end to end on the best data available
	$(PY) -m autograder.demo

test: $(STAMP)        ## the whole test suite (what CI runs)
	$(PY) -m pytest

model: $(STAMP)       ## train ece662/models/torch.model on the data get_CINIC10_data() finds
	$(PY) -m ece662.train

clean:
	rm -rf build .pytest_cache
