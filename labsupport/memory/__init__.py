"""GPU memory: a caching-allocator simulator, snapshot reading and plots, the lab 276 workload.

    >>> from labsupport.memory import workload, snapshot
    >>> r = workload.run_trace(workload.fragmentation_trace(), backend="simulator")
    >>> r.outcome, snapshot.summarize(r.snapshot).reserved_unallocated_bytes >> 20
    ('oom', 500)

Modules: config (PYTORCH_ALLOC_CONF parsing), simulator (the allocator's rules), snapshot
(summary and segment-map plot of a real or simulated snapshot), workload (traces, run on the
GPU in a fresh process or on the simulator). Importing this package imports neither torch nor
matplotlib.
"""
