"""Lab 294's server in a fresh process: Dynamo's real recompiles and fallback, the stand-in's
recordings and memory, the log on-call reads; and the evidence and figures built from a run."""

import pytest

from labsupport import isolate
from labsupport.scenarios import memory_grows_with_traffic as scenario
from labsupport.scenarios.memory_grows_with_traffic import figures, server, traffic

_RUNS: dict = {}


def _deployed(seed: int, n: int) -> server.Run:
    if (seed, n) not in _RUNS:
        v = scenario.variant(seed)
        r = isolate.run_function(
            server.ENTRY, v, n, "deployed", None, None, timeout_s=180, extra_env=server.ONE_THREAD
        )
        assert r.ok, r.error
        _RUNS[seed, n] = r.value
    return _RUNS[seed, n]


@pytest.mark.timeout(240)
def test_static_shapes_recompile_per_shape_until_the_limit_then_run_eager():
    v = scenario.variant(1)  # dynamic=False, recompile_limit 8, batch sizes vary
    run = _deployed(1, 14)
    distinct = traffic.distinct(traffic.shapes(v, 14))
    assert len(distinct) > v.recompile_limit  # the traffic reaches the limit
    recompiles = [line for line in run.log if "Recompiling function" in line]
    # the 9th shape's recompile is logged too, then hits the limit instead of compiling
    assert len(recompiles) == v.recompile_limit == run.compiled_graphs
    assert any("hit config.recompile_limit (8)" in line for line in run.log)
    assert any("size mismatch at index 0" in line for line in run.log)  # the batch
    paths = [r.path for r in run.requests]
    first_eager = paths.index("eager")
    assert paths[:first_eager].count("compile") == 8 and "compile" not in paths[first_eager:]
    assert len(run.recordings) == 8  # one graph per compile; none after the fallback
    # memory: the weights, plus every recording's pool, stepping up only when one is recorded
    assert run.final_reserved_bytes == run.baseline_reserved_bytes + sum(
        pool for _, _, pool, _ in run.recordings
    )
    level = run.baseline_reserved_bytes
    for r in run.requests:
        assert (r.reserved_bytes > level) == (r.path == "compile"), r
        level = r.reserved_bytes
    assert all(tuple(r.out_shape) == (r.batch, r.length, v.vocab_size) for r in run.requests)


@pytest.mark.timeout(240)
def test_the_default_dynamic_compiles_twice_then_records_a_graph_per_size():
    v = scenario.variant(0)  # dynamic=None, prompt lengths vary
    run = _deployed(0, 12)
    seen = traffic.shapes(v, 12)
    sizes = {n for _, n in seen[1:]}  # what the dynamic graph (from request 1 on) meets
    assert run.compiled_graphs == 2
    assert sum("Recompiling function" in line for line in run.log) == 1
    assert not any("recompile_limit" in line for line in run.log)
    # the second graph (dynamic length) records every size it meets, the first one's again
    by_graph = [g for g, _, _, _ in run.recordings]
    assert by_graph.count(0) == 1 and by_graph.count(1) == len(sizes)
    assert run.paths()["eager"] == 0 and run.error == ""


def test_evidence_is_the_log_and_the_dashboard_without_the_books():
    rec = server.RequestRecord(0, 4, 16, 900.0, 12 * server.MiB, "compile", (4, 16, 512))
    run = server.Run("deployed", 0, "cpu (stand-in)", "2", 10 * server.MiB, 10 * server.MiB,
                     requests=[rec], log=["INFO a line"])  # fmt: skip
    ev = server.evidence(run)
    assert ev == {
        "log": ["INFO a line"],
        "baseline_reserved_mib": 10.0,
        "requests": [
            {"request": 0, "batch": 4, "length": 16, "latency_ms": 900.0, "reserved_mib": 12.0}
        ],  # fmt: skip
    }
    assert run.final_reserved_bytes == 12 * server.MiB
    assert run.paths() == {"compile": 1, "record": 0, "replay": 0, "eager": 0}


def test_figures_draw_a_run_and_a_comparison():
    recs = [server.RequestRecord(i, 4, 8 * (i + 1), 5.0 + i, (10 + i) * server.MiB, p, ())
            for i, p in enumerate(["compile", "record", "replay", "eager"])]  # fmt: skip
    run = server.Run("deployed", 0, "cpu (stand-in)", "2", 10 * server.MiB, 10 * server.MiB,
                     requests=recs)  # fmt: skip
    assert figures.timeline(run).axes and figures.timeline(run, by_path=True).axes
    assert len(figures.comparison(run, run).axes) == 2


@pytest.mark.gpu
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_stand_in_matches_cuda_graph_trees_on_a_gpu(seed):
    """Same traffic on the real `mode="reduce-overhead"` (CUDA graph trees) and on the stand-in
    (the same process with the GPU hidden): the same compiles, recompiles and fallback request,
    and on the GPU memory_reserved grows with the recordings too."""
    v = scenario.variant(seed)
    runs = {}
    for name, env in (("gpu", {}), ("stand-in", {"CUDA_VISIBLE_DEVICES": ""})):
        r = isolate.run_function(
            server.ENTRY, v, 24, "deployed", None, None, timeout_s=280,
            extra_env={**server.ONE_THREAD, **env},
        )  # fmt: skip
        assert r.ok, r.error
        runs[name] = r.value
    gpu, cpu = runs["gpu"], runs["stand-in"]
    assert not gpu.device.startswith("cpu") and cpu.device.startswith("cpu")
    grown_mib = (gpu.final_reserved_bytes - gpu.warmed_reserved_bytes) / server.MiB
    print(f"{gpu.device}, torch {gpu.torch_version}: {gpu.paths()}, {grown_mib:.0f} MiB grown")
    compiles = [[r.index for r in run.requests if r.path == "compile"] for run in (gpu, cpu)]
    assert compiles[0] == compiles[1]
    recompiles = [sum("Recompiling function" in line for line in run.log) for run in (gpu, cpu)]
    assert recompiles[0] == recompiles[1]
    eager = [[r.index for r in run.requests if r.path == "eager"][:1] for run in (gpu, cpu)]
    assert eager[0] == eager[1]
    assert gpu.final_reserved_bytes > gpu.warmed_reserved_bytes
    assert len(gpu.recordings) >= 0.5 * len(cpu.recordings)  # recorded on a size's 2nd call
