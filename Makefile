# Two commands do all set-up (see README):  make demo   and   make test
# Both create .venv and install the project into it (reinstalling only when pyproject.toml changes),
# and install bubblewrap (the kernel sandbox for grading) and chromium (the tests open the pages people read in a
# real browser) where apt-get can (Linux, as root).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-gradescope test-handout test-load test-bench bench release model clean

$(STAMP): pyproject.toml
	@for tool in bwrap:bubblewrap chromium:chromium; do \
	  command -v $${tool%%:*} >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get install -y -q $${tool##*:} >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $${tool##*:} >/dev/null 2>&1; }; }; } || \
	    echo "note: $${tool##*:} is not installed ($${tool%%:*}: the kernel sandbox / the browser tests of pages)"; \
	done
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,grading,torch,tensorflow]'
	touch $(STAMP)

demo: $(STAMP)        ## the main job end to end on the best data available
	$(PY) -m demo

test: $(STAMP)        ## the whole test suite (what CI runs)
	$(PY) -m pytest

test-gradescope: $(STAMP)  ## the Gradescope bundle in a clean Debian root (root, debootstrap; ~10 min)
	$(PY) -m pytest -m gradescope_image -s tests/autograder/gradescope/test_gradescope_image.py

test-handout: $(STAMP)  ## the student handout in a fresh venv per framework, from its requirements file alone (PyPI)
	$(PY) -m pytest -m handout_venv -s tests/autograder/course/test_handout_venv.py

test-load: $(STAMP)   ## the same notebooks graded quietly and beside 12 busy processes: the same grades (~20 min)
	$(PY) -m pytest -m load_proof -s tests/end_to_end/test_load_proof.py

test-bench: $(STAMP)  ## `make bench` end to end on a tiny synthetic set: every figure measured and reported (~5 min)
	$(PY) -m pytest -m bench_run tests/benchmarks/test_benchmarks.py

bench: $(STAMP)       ## speed and memory at full CINIC-10 size (synthetic); writes benchmarks/REPORT.md
	$(PY) -m benchmarks

release: $(STAMP)     ## regenerate release/ from assignment/ with nbgrader
	$(PY) -m autograder release

model: $(STAMP)       ## train ece662/models/{torch,tensorflow}.model on the data get_CINIC10_data() finds, then profile them
	$(PY) -m ece662.train --mode torch
	$(PY) -m ece662.train --mode tensorflow
	$(PY) -m autograder profile --mode torch
	$(PY) -m autograder profile --mode tensorflow

clean:
	rm -rf build .pytest_cache
