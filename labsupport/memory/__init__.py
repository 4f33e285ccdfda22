"""GPU memory: a caching-allocator simulator, allocator settings, snapshot drawing.

    >>> from labsupport.memory.simulator import CachingAllocatorSim, MiB
    >>> sim = CachingAllocatorSim()
    >>> sim.free(sim.malloc(300 * MiB)); sim.memory_reserved() // MiB   # cached, still reserved
    300

Modules: config (PYTORCH_ALLOC_CONF parsing), simulator (the allocator's rules, torch 2.13's OOM
message, other processes on the card), snapshot (segment maps of a real or simulated
snapshot). Importing this package imports neither torch nor matplotlib. A lab's workloads live
in its scenario (lab 276: labsupport.scenarios.oom_despite_free_memory).
"""
