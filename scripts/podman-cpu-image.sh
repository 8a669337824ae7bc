#!/usr/bin/env bash
# Builds and runs Dockerfile.cpu with podman on a machine without an image registry:
# the base image is made locally with debootstrap (Debian bookworm with Python 3.11).
# Then it checks that the container serves the page, becomes ready and answers a chat.
#   sudo scripts/podman-cpu-image.sh [WHEELS_DIR]
# WHEELS_DIR (optional) is mounted during the build for pip to find wheels there first
# (e.g. a local torch CPU wheel when PyTorch's index is out of reach).
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-}
work=${WORK:-/tmp/phi4ui-podman}
port=${PORT:-7870}
pod=(podman --runtime runc --cgroup-manager=cgroupfs)
mkdir -p "$work"

if ! "${pod[@]}" image exists localhost/debian-python:bookworm; then
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$work/rootfs" http://deb.debian.org/debian
  tar -C "$work/rootfs" -c . | "${pod[@]}" import - localhost/debian-python:bookworm
fi

build=(--format docker --network host --build-arg BASE=localhost/debian-python:bookworm -f Dockerfile.cpu -t phi4ui-cpu)
[ -f /etc/ssl/certs/ca-certificates.crt ] && build+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
[ -n "$wheels" ] && build+=(-v "$wheels:/wheels:ro" --build-arg PIP_FIND_LINKS=/wheels --build-arg TORCH_INDEX=)
"${pod[@]}" build "${build[@]}" .

"${pod[@]}" rm -f phi4ui-cpu-check >/dev/null 2>&1 || true
"${pod[@]}" run -d --name phi4ui-cpu-check --network host --shm-size 1g -e PHI4UI_PORT="$port" \
  phi4ui-cpu
trap '"${pod[@]}" logs phi4ui-cpu-check > "$work/container.log" 2>&1; "${pod[@]}" rm -f phi4ui-cpu-check >/dev/null' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 2
done
curl -sf -o /dev/null "http://127.0.0.1:$port/" && echo "page served (HTTP 200)"
curl -sf "http://127.0.0.1:$port/healthz" && echo
python3 - "$port" <<'PY'
import json, sys, uuid, urllib.request as u
base = f"http://127.0.0.1:{sys.argv[1]}"
config = json.load(u.urlopen(base + "/config"))
fn = {d.get("api_name"): d.get("id", i) for i, d in enumerate(config["dependencies"])}
session = uuid.uuid4().hex
text = "Hello from the container check"


def event(name, data):
    body = {"data": data, "fn_index": fn[name], "session_hash": session}
    u.urlopen(u.Request(base + "/gradio_api/queue/join", json.dumps(body).encode(),
                        {"Content-Type": "application/json"}))
    for line in u.urlopen(base + "/gradio_api/queue/data?session_hash=" + session):
        if line.startswith(b"data:"):
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                return message


event("accept", [{"text": text, "files": []}, [], False, "Be brief."])
done = event("answer", [[{"role": "user", "content": [{"type": "text", "text": text}]}], None,
                        "Be brief.", 0.0, 1.0, 32, None])
print("chat answered:", done.get("success"), json.dumps(done["output"]["data"][0])[:300])
PY
