# phi4ui on a CUDA machine, on the official vLLM image.
#   docker build -t phi4ui .
#   docker run --gpus all -p 7860:7860 --ipc=host -v phi4ui-data:/data phi4ui
#   docker run ... -e PHI4UI_FRONTENDS=4 phi4ui     several page processes on one engine
# Build with --build-arg PRELOAD_MODEL=1 to put the model and its adapters in the image
# instead of downloading them at first start.
FROM vllm/vllm-openai:v0.24.0

ARG PRELOAD_MODEL=0
ARG MODEL=microsoft/Phi-4-multimodal-instruct
ARG REVISION=0ae13bd0f508a906f8b8288fc5e36b01b903c132

ENV HF_HOME=/data/huggingface \
    PHI4UI_HOST=0.0.0.0 \
    PHI4UI_PORT=7860 \
    PHI4UI_WEIGHTS=real \
    PHI4UI_MODEL=${MODEL} \
    PHI4UI_REVISION=${REVISION} \
    PHI4UI_DB_PATH=/data/phi4ui/phi4ui.db \
    PHI4UI_CACHE_DIR=/data/phi4ui/cache \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PYTHONUNBUFFERED=1

# HAProxy: for --frontends N (PHI4UI_FRONTENDS), several page processes on one engine.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt requirements-gpu.txt ./
RUN python3 -m pip install --no-cache-dir -r requirements-gpu.txt

# Spaces and most hosts run containers as uid 1000.
RUN useradd --create-home --uid 1000 --shell /bin/bash phi4ui \
    && mkdir -p /data && chown phi4ui:phi4ui /data
COPY --chown=phi4ui:phi4ui app.py ./
COPY --chown=phi4ui:phi4ui phi4ui ./phi4ui
COPY --chown=phi4ui:phi4ui assets ./assets
USER 1000

RUN if [ "$PRELOAD_MODEL" = "1" ]; then \
      python3 -c "from huggingface_hub import snapshot_download as s; s('${MODEL}', revision='${REVISION}')"; \
    fi

VOLUME ["/data"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
  CMD ["python3", "-m", "phi4ui", "healthcheck"]
ENTRYPOINT ["python3", "app.py"]
