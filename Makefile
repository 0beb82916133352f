# The two commands of the README: `make demo` (set up + main job) and `make test` (set up + tests).
PY      := .venv/bin/python
STAMP   := .venv/.installed
OUT     ?= runs/demo

.PHONY: demo test test-all lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,minari,faiss,ray]'
	touch $@

demo: $(STAMP)
	$(PY) scripts/demo.py --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

lint: $(STAMP)
	.venv/bin/ruff check .

bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
