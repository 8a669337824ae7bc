#!/usr/bin/env bash
# phi4ui on a CUDA machine without network, from the carried archives:
#   bench/gpu/run.sh unpack   vLLM's CUDA build from .gpu/vllm_site.tar.xz into /tmp/site; an
#                             archive too large for one transfer comes split (split -b), its
#                             parts vllm_site.tar.xz.part-* in .gpu*/ over several calls:
#                             each call keeps its part in /tmp/parts, and the call that has
#                             them all (.gpu*/vllm_site.parts says how many) unpacks them
#   bench/gpu/run.sh deps     the app's other wheels from .whl/ into /tmp/site
#   bench/gpu/run.sh smoke    a full-size dummy-weight Phi-4-MM: every modality through the
#                             app's embedded engine, with its statistics
#   bench/gpu/run.sh bench [benchmark flags]
#                             the benchmark at 1, 16, 64 users: the raw engine (its people in
#                             step, then pausing 0-80 ms before each answer), the app, the
#                             scaled-out app, vLLM's server (one API process and
#                             --api-server-count 4), with the clients in 8 processes and their
#                             calibration against the zero-cost stand-in (--paths picks fewer)
#   bench/gpu/run.sh calibrate [benchmark flags]
#                             only the clients' ceiling against the stand-in (no engine)
#   bench/gpu/run.sh realistic [benchmark flags]
#                             people arriving at random, 512-token answers, growing until the
#                             first token's p95 passes 1 s: app, scaled-out app and vLLM's server
#   bench/gpu/run.sh report   the committed report: every path, the page paths with
#                             --stream-interval 4, and 1 vs 2 GPUs
#   bench/gpu/run.sh soak [soak flags]
#                             the soak (bench/soak.py) on the tiny checkpoint, on this machine
# The archives are made on a CPU machine (see the README's GPU section); a transfer holds 64 MiB,
# so vLLM and the rest travel in separate calls to the same warm machine.
# Results go to $OUT (or ./gpu-out).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-out}
mkdir -p "$out"
export PATH=/tmp/site-bin:/tmp/site/bin:$PATH PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 \
  VLLM_NO_USAGE_STATS=1 PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False
checkpoint=/tmp/phi4mm-full

# The full-size random-weight checkpoint, built once. A build cut short (its process ended
# with the call that started it in the background) leaves a folder with truncated adapters,
# which vLLM refuses only when a page process loads them: a marker says the build finished.
full_checkpoint() {
  [ -f $checkpoint/.complete ] && return
  rm -rf $checkpoint
  python3 -m phi4ui tinymodel $checkpoint --full
  touch $checkpoint/.complete
}

case "${1:-}" in
  unpack)
    if [ ! -f /tmp/site/.vllm ] && [ ! -f .gpu/vllm_site.tar.xz ]; then
      mkdir -p /tmp/parts
      cp .gpu*/vllm_site.tar.xz.part-* .gpu*/vllm_site.parts /tmp/parts/ 2>/dev/null || true
      have=$(find /tmp/parts -name 'vllm_site.tar.xz.part-*' | wc -l)
      want=$(cat /tmp/parts/vllm_site.parts 2>/dev/null || echo '?')
      if [ "$have" != "$want" ]; then echo "vLLM's archive: $have of $want parts; carry the next"; exit 0; fi
      mkdir -p /tmp/site && cat /tmp/parts/vllm_site.tar.xz.part-* | xz -T0 -d | tar -x -C /tmp/site
      touch /tmp/site/.vllm && rm -rf /tmp/parts
    fi
    [ -f /tmp/site/.vllm ] || { mkdir -p /tmp/site && xz -T0 -dc .gpu/vllm_site.tar.xz | tar -x -C /tmp/site && touch /tmp/site/.vllm; }
    python3 -c "import vllm; print('vllm', vllm.__version__)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    ;;
  deps)
    # The wheels may come in several folders (.whl, .whl2, ...): a transfer holds 64 MiB.
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl*/*.whl
    if [ -x .whl/haproxy/haproxy ] && ! command -v haproxy >/dev/null; then
      # Debian's HAProxy and its libraries, for serve --frontends on a machine without apt;
      # outside /tmp/site, whose bin/ the next pip --target --upgrade replaces.
      mkdir -p /tmp/site-bin/haproxy-files && cp -r .whl/haproxy/* /tmp/site-bin/haproxy-files/
      printf '#!/bin/sh\nLD_LIBRARY_PATH=/tmp/site-bin/haproxy-files/lib exec /tmp/site-bin/haproxy-files/haproxy "$@"\n' \
        > /tmp/site-bin/haproxy && chmod +x /tmp/site-bin/haproxy
    fi
    touch /tmp/site/.deps
    python3 -c "import gradio, soundfile, soxr, av, mcp, jiwer; print('gradio', gradio.__version__)"
    haproxy -v | head -1
    ;;
  smoke)
    full_checkpoint
    python3 -m bench.gpu.smoke $checkpoint "$out/smoke.json" --max-model-len 8192 \
      --gpu-memory-utilization 0.85 2>&1 | tee "$out/smoke.log" | grep -vE "^\(|WARNING" || true
    ;;
  bench)
    full_checkpoint
    python3 -m bench --model $checkpoint --paths raw,app,app_scaled,server,server_api4 \
      --kinds text,image,audio --users 1,16,64 --output-tokens 128 --requests-per-user 2 \
      --max-model-len 8192 --max-num-seqs 64 --client-procs 8 --raw-pause-ms 40 \
      --label "H200" --out "$out" "${@:2}" 2>&1 | tee "$out/bench.log" \
      | grep -vE "^\(|WARNING" || true
    ;;
  calibrate)
    python3 -m bench --calibrate --users 1,16,64 --output-tokens 128 --client-procs 8 \
      --label "clients" --out "$out" "${@:2}" 2>&1 | tee "$out/calibrate.log" || true
    ;;
  realistic)
    full_checkpoint
    python3 -m bench --model $checkpoint --realistic --realistic-paths app,app_scaled,server \
      --realistic-people 16,32,64,96,128,192,256 --max-model-len 8192 --max-num-seqs 256 \
      --client-procs 8 --label "H200 realistic" --out "$out" "${@:2}" 2>&1 \
      | tee "$out/realistic.log" | grep -vE "^\(|WARNING" || true
    ;;
  report)
    # The whole H200 report (two GPUs for the data-parallel part), each part in its own
    # folder under $out: every path at 1 to 64 people with 8 page processes; the page paths
    # again with --stream-interval 4 (and 128 people); then the same scaled-out app on two
    # GPUs. Run it in the background (setsid) and collect the folders as they are written.
    OUT="$out/stress" "$0" bench --paths raw,app,app_scaled,server_api4 --frontends 8
    OUT="$out/interval4" "$0" bench --paths app,app_scaled --users 1,16,64,128 --frontends 8 \
      --no-calibration --extra-app-args "--stream-interval 4" --label "H200 stream-interval 4"
    OUT="$out/dp2" "$0" bench --paths app_scaled --kinds text --users 64,128 --frontends 8 \
      --no-calibration --extra-app-args "--stream-interval 4 --data-parallel-size 2" \
      --label "H200 x2 stream-interval 4"
    ;;
  soak)
    python3 -m bench.soak --out "$out" "${@:2}" 2>&1 | tee "$out/soak.log" \
      | grep -vE "^\(|WARNING" || true
    ;;
  *) echo "usage: $0 unpack|deps|smoke|bench|calibrate|realistic|report|soak" >&2; exit 2 ;;
esac
