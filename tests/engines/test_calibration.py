"""The remote engine measures the server's image tiling (dynamic_hd) before planning.

Two real vLLM servers on the tiny checkpoint: the tests' shared one, started as the model
card starts the real model (no `--mm-processor-kwargs`, so the checkpoint's
preprocessor_config.json decides: 4 here, as 36 does for the real model), one started with
`--mm-processor-kwargs '{"dynamic_hd": 1}'`. The app is not told either value; it must plan
exactly the prompt tokens each server spends on an image whose cost differs between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phi4ui.core.images import image_token_count
from phi4ui.engines import calibration
from phi4ui.engines.remote import RemoteEngine
from phi4ui.engines.remote_server import DEFAULT_DYNAMIC_HD
from phi4ui.page import panels
from phi4ui.settings import load_settings
from tests.conftest import TEST_DYNAMIC_HD
from tests.support.enginehelpers import FIXED, collect, plan
from tests.support.mediafiles import write_image
from tests.support.vllm_server import VllmServer

LARGE = (2000, 1500)  # the photo of the report: 20 crops at most, fewer at low dynamic_hd
# (how the server is started, the dynamic_hd it applies)
SERVERS = {"from the checkpoint's config": (None, TEST_DYNAMIC_HD),
           "from --mm-processor-kwargs": (1, 1)}


def test_the_calibration_image_tells_every_value_apart():
    image = calibration.calibration_image()
    costs = calibration.image_costs(image)
    assert len(set(costs.values())) == calibration.MAX_MEASURED
    for dynamic_hd, cost in costs.items():
        assert calibration.match(cost + 3, 3, costs, exact=True) == calibration.Measured(
            dynamic_hd, at_least=dynamic_hd == calibration.MAX_MEASURED)
        assert calibration.match(cost + 3 + 5, 3, costs, exact=False).dynamic_hd == dynamic_hd
    assert calibration.match(costs[2] + 1, 0, costs, exact=True) is None


def test_an_estimate_too_far_from_every_value_names_none():
    costs = calibration.image_costs(calibration.calibration_image())
    off = calibration.ESTIMATE_TOLERANCE + 1
    assert calibration.match(costs[5] + 3 + off, 3, costs, exact=False) is None
    assert calibration.match(costs[5] + 3 - off, 3, costs, exact=False) is None
    assert calibration.Measured(5).text == "5"
    assert calibration.Measured(44, at_least=True).text == "44 or more"


def test_the_test_values_give_the_large_image_different_costs():
    counts = {hd: image_token_count(*LARGE, dynamic_hd=hd)
              for hd in (1, TEST_DYNAMIC_HD, DEFAULT_DYNAMIC_HD)}
    assert len(set(counts.values())) == 3, counts


@pytest.fixture(scope="module", params=list(SERVERS))
def served(request: Any, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[VllmServer, int]]:
    flag, applied = SERVERS[request.param]
    if flag is None:  # the tests' shared server is started that way
        yield request.getfixturevalue("vllm_server"), applied
        return
    server = VllmServer(checkpoint, tmp_path_factory.mktemp("calibration") / "server.log",
                        dynamic_hd=flag)
    server.start()
    yield server, applied
    server.stop()


@pytest.fixture(scope="module")
def engine(served: tuple[VllmServer, int], engine_loop: Any) -> Iterator[RemoteEngine]:
    server, _ = served
    settings = load_settings(["--engine", "remote", "--base-url", server.base_url,
                              "--max-images", "2", "--max-audios", "2",
                              "--request-timeout", "300"], environ={})
    remote = RemoteEngine(settings)
    engine_loop.run(remote.start())
    assert remote.status.state == "ready", remote.status.message
    yield remote
    engine_loop.run(remote.close())


@pytest.mark.engine
def test_the_server_s_dynamic_hd_is_known_before_the_first_request(engine, served):
    _, applied = served
    info = engine.info
    assert info.dynamic_hd == engine.media_limits.dynamic_hd == applied
    assert info.dynamic_hd_source == f"measured on the server ({applied})"
    assert info.warnings == ()
    assert (f"| Image crops (dynamic_hd) | {applied}, measured on the server ({applied}) |"
            in panels.engine_settings_markdown(info))


@pytest.mark.engine
def test_a_large_image_is_planned_as_the_server_counts_it(engine, served, engine_loop,
                                                          tmp_path):
    _, applied = served
    photo = str(write_image(tmp_path, "photo.png", size=LARGE))
    request = plan(engine_loop, engine, {"text": "What is in it?", "files": [photo]},
                   sampling=FIXED)
    assert request.images[0].tokens == image_token_count(*LARGE, dynamic_hd=applied)

    _, stats = engine_loop.run(collect(engine, request))

    assert stats.prompt_tokens == request.tokens.total
    assert stats.adapter == "vision"


@pytest.mark.engine
def test_a_wrong_dynamic_hd_setting_gives_way_to_the_server_s(served, engine_loop):
    server, applied = served
    settings = load_settings(["--engine", "remote", "--base-url", server.base_url,
                              "--dynamic-hd", "16"], environ={})
    remote = RemoteEngine(settings)
    try:
        engine_loop.run(remote.start())
        assert remote.media_limits.dynamic_hd == applied
        assert any(f"--dynamic-hd 16 differs from the server's {applied}" in warning
                   for warning in remote.info.warnings)
    finally:
        engine_loop.run(remote.close())
