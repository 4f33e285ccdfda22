"""The CPU stand-in for a CUDA context's errors, and (on a GPU) the real thing beside it."""

import contextlib
import io
import threading

import pytest
import torch

from labsupport import cuda_standin, isolate


def _ctx(**kwargs):
    return cuda_standin.StandInContext(echo=io.StringIO(), **kwargs)


def test_a_failed_kernel_is_reported_at_the_next_sync_then_every_call_fails():
    ctx = _ctx(launch_blocking=False)
    emb = torch.nn.Embedding(8, 2)
    with ctx.thread():
        x = emb(torch.tensor([1, 9]))  # no error here
        y = x * 2  # nor here: the host runs ahead
        assert ctx.fault is not None and not ctx.dead
        with pytest.raises(RuntimeError, match="device-side assert triggered") as info:
            y.tolist()
        assert "CUDA_LAUNCH_BLOCKING=1" in str(info.value)
        with pytest.raises(RuntimeError, match="device-side assert triggered"):
            torch.ones(2)  # sticky: any later op
    assert ctx.fault.op == "aten.embedding.default"
    assert "srcIndex < srcSelectDimSize" in ctx.echo.getvalue()
    assert torch.ones(2).sum().item() == 2.0  # a thread outside the context is untouched


def test_with_launches_blocking_the_failing_call_raises():
    ctx = _ctx(launch_blocking=True)
    mask = torch.zeros(8)
    with ctx.thread(), pytest.raises(RuntimeError) as info:
        mask[[3, 12]] = 1.0  # index_put_: checked inside the kernel
    assert "asynchronously reported" not in str(info.value)
    assert '"index out of bounds"' in ctx.echo.getvalue()


def test_an_index_refused_on_the_host_raises_at_once_and_is_not_sticky():
    ctx = _ctx(launch_blocking=False)
    with ctx.thread():
        with pytest.raises(IndexError):
            torch.zeros(8)[9]  # select with a Python int: a host-side check
        assert torch.ones(3).sum().item() == 3.0
    assert ctx.fault is None and not ctx.dead


def test_the_error_is_sticky_in_every_thread_that_uses_the_device():
    ctx = _ctx(launch_blocking=True)
    with ctx.thread(), contextlib.suppress(RuntimeError):
        torch.nn.Embedding(4, 2)(torch.tensor([5]))
    seen = []

    def other():
        with ctx.thread():
            try:
                torch.ones(1)
            except RuntimeError as exc:
                seen.append(str(exc).splitlines()[0])

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [cuda_standin.ASSERT_ERROR]


def test_the_process_context_reads_the_environment(monkeypatch):
    monkeypatch.setattr(cuda_standin, "_PROCESS", {})
    monkeypatch.setenv("CUDA_LAUNCH_BLOCKING", "1")
    assert cuda_standin.context().launch_blocking
    assert isinstance(cuda_standin.device_thread("cuda:0"), contextlib.nullcontext)


_REAL = """
import torch
x = torch.nn.Embedding(8, 2).cuda()(torch.tensor([1, 9], device="cuda"))
y = x * 2
try:
    y.sum().item()
    print("no error")
except RuntimeError as exc:
    print("raised:", str(exc).splitlines()[0])
try:
    torch.ones(1, device="cuda").sum().item()
    print("after: ok")
except RuntimeError as exc:
    print("after:", str(exc).splitlines()[0])
"""


@pytest.mark.gpu
@pytest.mark.timeout(300)
def test_the_stand_in_behaves_as_a_real_cuda_context():
    """On a GPU: the same bad lookup is reported by a later call with the stand-in's first
    line, and every call after it fails, as the stand-in models."""
    r = isolate.run_python(_REAL, timeout_s=120)
    print(r.stdout, r.stderr[-2000:])
    assert f"raised: {cuda_standin.ASSERT_ERROR}" in r.stdout
    assert f"after: {cuda_standin.ASSERT_ERROR}" in r.stdout
    assert "srcIndex < srcSelectDimSize" in r.stderr
