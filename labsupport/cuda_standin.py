"""A CPU stand-in for how a CUDA context fails: asynchronous kernel errors, then a dead context.

    >>> import torch
    >>> from labsupport import cuda_standin
    >>> ctx = cuda_standin.StandInContext(launch_blocking=False, echo=None)
    >>> emb = torch.nn.Embedding(8, 2)
    >>> with ctx.thread():
    ...     x = emb(torch.tensor([3, 9]))        # the kernel fails: nothing is raised here ...
    ...     y = x * 2                            # ... nor here: the host runs ahead
    ...     try:
    ...         y.sum().item()                   # the next synchronising call reports it
    ...     except RuntimeError as exc:
    ...         print(str(exc).splitlines()[0])
    CUDA error: device-side assert triggered
    >>> ctx.dead, ctx.fault.op
    (True, 'aten.embedding.default')
    >>> with ctx.thread():                       # every later call in this process fails
    ...     torch.ones(1)                        # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    torch.AcceleratorError: CUDA error: device-side assert triggered

On a GPU a kernel runs after the Python call that launched it has returned, and a failed
device-side assertion (an index out of range inside `index_select`, `index_put_` ...) reaches
the host only at a later API call, usually the next one that waits for the device
(`.item()`, `.tolist()`, a copy to the host): the traceback names that line, not the
kernel's. `CUDA_LAUNCH_BLOCKING=1` makes every launch wait, so the error is raised by the
call that launched the kernel. And the error is sticky: the context is unusable, every later
CUDA call in the process fails with the same error, and only a new process recovers.

On the CPU the same operations raise an `IndexError` at once and nothing is sticky. This
stand-in, entered per thread (`ctx.thread()`), gives the CPU the GPU's semantics, with the
texts PyTorch and the CUDA kernels print:

- an operation that fails while checking its *data* (its meta kernel, which sees only shapes,
  accepts it) is a device-side failure: its kernel's assertion line goes to stderr, the call
  returns a placeholder result, and the error is raised at the next synchronising call
  (`tolist`, `item`, `numpy`, `int()`, `float()`, `bool()`), or at once when launches block;
- an operation that fails on shapes or arguments (its meta kernel refuses it too, e.g.
  `logits[600]` with a Python int) is checked on the host on a GPU as well: it raises as on
  the CPU, synchronously, and the context stays usable;
- once reported, the error is sticky: every torch operation in a thread that entered the
  context raises `torch.AcceleratorError` (`RuntimeError` before torch 2.8), in any thread.

On the stand-in every torch operation of such a thread counts as device work (on a GPU only
CUDA work fails; host-side tensors keep working). `context()` is the process's one context,
created from the environment (`CUDA_LAUNCH_BLOCKING`), as CUDA reads it when a process
initialises its device.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

ERROR_TYPE = getattr(torch, "AcceleratorError", RuntimeError)

ASSERT_ERROR = "CUDA error: device-side assert triggered"
# PyTorch's text after a CUDA error (c10/cuda/CUDAException.cpp), torch >= 2.8
_SEARCH = (
    "Search for `cudaErrorAssert' in "
    "https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html for more information."
)
_ASYNC = (
    "CUDA kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1"
)
_DSA = "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions."

# The assertion each kernel prints from the device (file and line as in torch 2.x sources)
_INDEX_SELECT = (
    "/pytorch/aten/src/ATen/native/cuda/Indexing.cu:1553: indexSelectSmallIndex: "
    "block: [0,0,0], thread: [{thread},0,0] Assertion `srcIndex < srcSelectDimSize` failed."
)
_INDEX = (
    "/pytorch/aten/src/ATen/native/cuda/IndexKernel.cu:111: operator(): block: [0,0,0], "
    "thread: [{thread},0,0] Assertion `-sizes[i] <= index && index < sizes[i] && "
    '"index out of bounds"` failed.'
)
KERNEL_ASSERTS = {
    "aten.embedding.default": _INDEX_SELECT,
    "aten.index_select.default": _INDEX_SELECT,
    "aten.index.Tensor": _INDEX,
    "aten.index_put_.default": _INDEX,
    "aten.index_put.default": _INDEX,
    "aten._index_put_impl_.default": _INDEX,
}
_GENERIC_ASSERT = "{op}: block: [0,0,0], thread: [{thread},0,0] Assertion failed."
_SYNC_CALLS = {"tolist", "item", "numpy", "__int__", "__float__", "__bool__", "__index__"}


def error_text(launch_blocking: bool) -> str:
    """The message of the RuntimeError PyTorch raises after a failed device-side assertion."""
    lines = [ASSERT_ERROR, _SEARCH]
    if not launch_blocking:
        lines.append(_ASYNC)
    lines.append(_DSA)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Fault:
    """The kernel that failed: its aten op, the CPU's own error, the assertion it printed."""

    op: str
    cpu_error: str
    assertion: str


def _to_meta(value, originals: dict):
    if isinstance(value, torch.Tensor):
        meta = value.to("meta")
        originals[id(meta)] = value
        return meta
    return value


class _Kernels(TorchDispatchMode):
    def __init__(self, ctx: StandInContext):
        super().__init__()
        self.ctx = ctx

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        _report(self.ctx.raise_if_dead)
        try:
            return func(*args, **kwargs)
        except (IndexError, RuntimeError, ValueError) as exc:
            failure = exc
        originals: dict = {}
        meta_args, meta_kwargs = tree_map(lambda v: _to_meta(v, originals), (args, kwargs))
        try:
            out = func(*meta_args, **meta_kwargs)
        except Exception:
            raise failure from None  # refused on shapes or arguments: a host-side check
        _report(lambda: self.ctx.kernel_failed(str(func), failure))  # now if launches block
        return tree_map(lambda v: _placeholder(v, originals), out)


def _report(call) -> None:
    """Run `call`; a CUDA error it raises leaves from here, without the stand-in's frames."""
    try:
        call()
    except ERROR_TYPE as exc:
        error = exc
    else:
        return
    raise error.with_traceback(None) from None


def _placeholder(value, originals: dict):
    if isinstance(value, torch.Tensor):
        if id(value) in originals:  # an in-place op hands its input back
            return originals[id(value)]
        return torch.zeros(value.shape, dtype=value.dtype)
    return value


class _Syncs(TorchFunctionMode):
    def __init__(self, ctx: StandInContext):
        super().__init__()
        self.ctx = ctx

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in _SYNC_CALLS:
            _report(self.ctx.synchronize)
        return func(*args, **(kwargs or {}))


class StandInContext:
    """One process's stand-in CUDA context: its pending kernel error and whether it is dead."""

    def __init__(self, *, launch_blocking: bool | None = None, echo=sys.stderr):
        if launch_blocking is None:
            launch_blocking = os.environ.get("CUDA_LAUNCH_BLOCKING", "0") == "1"
        self.launch_blocking = launch_blocking
        self.echo = echo  # where kernels' assertion lines go (None: nowhere)
        self.fault: Fault | None = None
        self.dead = False  # the error was reported: every later call fails
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def thread(self):
        """Run this thread's torch operations on the stand-in device."""
        with _Kernels(self), _Syncs(self):
            yield self

    def kernel_failed(self, op: str, exc: BaseException) -> None:
        with self._lock:
            if self.fault is None:
                template = KERNEL_ASSERTS.get(op, _GENERIC_ASSERT)
                lines = [template.format(op=op, thread=t) for t in range(2)]
                self.fault = Fault(op, f"{type(exc).__name__}: {exc}", lines[0])
                if self.echo is not None:
                    print("\n".join(lines), file=self.echo, flush=True)
        if self.launch_blocking:
            self.synchronize()

    def synchronize(self) -> None:
        """Wait for the device: report a failed kernel (once), as every call after it does."""
        with self._lock:
            if self.fault is not None:
                self.dead = True
        self.raise_if_dead()

    def raise_if_dead(self) -> None:
        if self.dead:
            raise ERROR_TYPE(error_text(self.launch_blocking))


_PROCESS: dict = {}


def context() -> StandInContext:
    """This process's stand-in context (created on first use, from the environment)."""
    if "ctx" not in _PROCESS:
        _PROCESS["ctx"] = StandInContext()
    return _PROCESS["ctx"]


def device_thread(device: str):
    """The context a thread working on `device` enters: the stand-in on "cpu", none on CUDA."""
    if str(device).startswith("cuda"):
        return contextlib.nullcontext()
    return context().thread()
