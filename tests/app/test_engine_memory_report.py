"""The engine-memory benchmark's report, from a made-up run (the run itself takes minutes)."""

from bench.engine_memory import markdown


def _run(capacity: str, loaded: int, growth: list[int], rounds: list[float]) -> dict:
    return {"capacity": capacity, "tcmalloc": True, "loaded_mib": loaded,
            "after_distinct_lengths": [(50 * (i + 1), loaded + g) for i, g in enumerate(growth)],
            "after_100_repeated_mib": loaded + growth[-1], "rounds_s": rounds,
            "end_mib": loaded + growth[-1]}


def test_each_capacity_is_a_row_of_growth_from_its_own_start() -> None:
    report = {"command": "python -m bench.engine_memory", "versions": {},
              "machine": {"cores": 2, "cpu": "x86_64", "memory_gib": 24, "gpu": None,
                          "python": "3.11"},
              "runs": [_run("default", 3574, [31, 89], [13.45, 12.87]),
                       _run("256", 3583, [22, 46], [14.98, 15.17])]}
    text = markdown(report)
    assert "2 cores (x86_64), 24 GiB, GPU: none" in text
    assert "| capacity | loaded | growth after 50, 100 distinct lengths (MiB) |" in text
    assert "| default | 3574 MiB | +31, +89 | +89 | 13.45, 12.87 |" in text
    assert "| 256 | 3583 MiB | +22, +46 | +46 | 14.98, 15.17 |" in text
