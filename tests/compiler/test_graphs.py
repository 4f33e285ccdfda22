"""labsupport.compiler.graphs: real Dynamo, a CUDA-graph recording per graph and size."""

import logging

import pytest
import torch
import torch._dynamo

from labsupport.compiler import GraphRecorder


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch.compiler.set_stance("default")
    torch._dynamo.reset()


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 8))


def test_static_shapes_compile_and_record_once_per_shape_then_replay():
    rec, model = GraphRecorder(), _mlp()
    step = torch.compile(model, backend=rec.backend, dynamic=False)
    with torch.no_grad():
        for rows in (2, 3, 2, 3, 5):
            out = step(torch.ones(rows, 8))
            assert torch.allclose(out, model(torch.ones(rows, 8)))
    assert rec.graphs == 3 and len(rec.recordings) == 3 and rec.replays == 2
    assert [r.shapes for r in rec.recordings] == [((2, 8),), ((3, 8),), ((5, 8),)]
    assert all(r.pool_bytes >= 2 * 2**20 for r in rec.recordings)
    assert rec.reserved_bytes() == sum(r.pool_bytes for r in rec.recordings)


def test_a_dynamic_graph_records_every_new_size_without_recompiling():
    from torch._inductor.cudagraph_utils import cudagraphs_log

    rec, model = GraphRecorder(), _mlp()
    step = torch.compile(model, backend=rec.backend)  # torch's default: automatic dynamic
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    cudagraphs_log.addHandler(handler)  # torch's loggers do not propagate to the root
    try:
        with torch.no_grad():
            for rows in range(2, 14):
                step(torch.ones(rows, 8))
    finally:
        cudagraphs_log.removeHandler(handler)
    assert rec.graphs == 2  # the first, static; the second with a dynamic size
    assert len(rec.recordings) == 12
    assert any("recording a new graph for each distinct input size" in m for m in seen)


def test_past_the_recompile_limit_new_shapes_run_eagerly_and_record_nothing():
    rec, model = GraphRecorder(), _mlp()
    step = torch.compile(model, backend=rec.backend, dynamic=False)
    limit = torch._dynamo.config.recompile_limit
    with torch.no_grad():
        for rows in range(1, limit + 5):
            out = step(torch.ones(rows, 8))
            assert torch.allclose(out, model(torch.ones(rows, 8)))
    assert rec.graphs == limit and len(rec.recordings) == limit
    assert rec.calls == limit  # the later shapes never reached a graph


def test_replays_copy_the_inputs_into_the_static_buffers():
    rec, model = GraphRecorder(), _mlp()
    step = torch.compile(model, backend=rec.backend, dynamic=False)
    with torch.no_grad():
        first, second = torch.randn(4, 8), torch.randn(4, 8)
        step(first)
        assert torch.allclose(step(second), model(second))
    assert rec.replays == 1


def test_fail_on_recompile_raises_for_a_new_shape_after_warm_up():
    rec, model = GraphRecorder(), _mlp()
    step = torch.compile(model, backend=rec.backend, dynamic=False)
    with torch.no_grad():
        step(torch.ones(4, 8))
        torch.compiler.set_stance("fail_on_recompile")
        step(torch.ones(4, 8))
        with pytest.raises(RuntimeError, match="recompile"):
            step(torch.ones(6, 8))
