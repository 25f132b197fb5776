# One command to try it, one to test it:
#   make demo   - set up, index the bundled Milvus docs into Milvus Lite, open the terminal chat
#   make test   - set up, then ruff + mypy + pytest (what CI runs)
VENV  ?= .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
# The CPU wheel of torch. A plain `torch` resolved by pip pulls a multi-GB CUDA build; GPU users:
#   make install TORCH_SPEC="torch"   (or any spec/extra index you prefer)
TORCH_SPEC ?= torch==2.13.0
QUESTIONS  ?= ../shared/eval/dev_questions.jsonl

.PHONY: install demo index chat test lint bench eval clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e '.[dev]'
	touch $@

demo: install
	$(VENV)/bin/docsbot index
	$(VENV)/bin/docsbot chat

index: install
	$(VENV)/bin/docsbot index

chat: install
	$(VENV)/bin/docsbot chat

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q

eval: install
	$(VENV)/bin/docsbot eval --questions $(QUESTIONS)

bench: install
	$(PY) benchmarks/bench_index.py
	$(PY) benchmarks/bench_retrieval.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
