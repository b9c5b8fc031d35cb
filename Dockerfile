# syntax=docker/dockerfile:1.7
# One image for every role: `onebox serve`, `onebox worker`, `onebox db upgrade`.
#   docker build -t onebox:latest .
#   docker build --build-arg CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON" -t onebox:latest .
# Nothing secret is baked in: keys, tokens and passwords arrive at run time (env or files
# under /run/secrets). Models come from the Python packages (SmolLM2, MiniLM) or a volume
# mounted at /models (ONEBOX_MODEL_PATH, ONEBOX_MODELS_FILE).

ARG PYTHON_VERSION=3.12

# ---- builder: compile llama-cpp-python once, install everything into /opt/venv ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 CMAKE_ARGS=${CMAKE_ARGS}
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip wheel setuptools
# The CPU build of torch first, so sentence-transformers does not pull a multi-GB CUDA one
# (GPU inference belongs to the engine container: vLLM, llama.cpp server, Ollama).
RUN pip install --index-url https://download.pytorch.org/whl/cpu 'torch==2.13.0'
# llama-cpp-python is the slow compile: its own layer, cached while only our code changes.
RUN pip wheel --wheel-dir /wheels 'llama-cpp-python>=0.3.7,<0.4' \
 && pip install /wheels/llama_cpp_python-*.whl
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[postgres]'

# ---- runtime: slim, no compilers, non-root ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 onebox \
 && useradd --system --uid 10001 --gid onebox --home-dir /data --shell /usr/sbin/nologin onebox \
 && mkdir -p /data /models /run/onebox-metrics \
 && chown onebox:onebox /data /run/onebox-metrics
COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/onebox-entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ONEBOX_DATA_DIR=/data \
    ONEBOX_HOST=0.0.0.0 \
    ONEBOX_PORT=8000 \
    ONEBOX_METRICS_DIR=/run/onebox-metrics
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:${ONEBOX_PORT}/healthz || exit 1
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/onebox-entrypoint"]
CMD ["serve"]
