"""Lab 284's hints, from a nudge to the mechanism (`hint("284", level, exercise)`)."""

HINTS = {
    "shm_needed_bytes": (
        "Look at the debug runs: /dev/shm climbs in steps of one batch while the first step "
        "runs, then levels off. Count the steps of the plateau and compare them with "
        "num_workers and prefetch_factor.",
        "Each worker keeps prefetch_factor batches queued, each batch in its own shared-memory "
        "segment until the training loop lets go of it. The loop holds the batch it trains on, "
        "and during next() the previous one too. A batch is batch_size x the sample's "
        "elements x the dtype's bytes.",
        "(num_workers x prefetch_factor + 2) x batch bytes; 0 when num_workers is 0. "
        "pin_memory adds page-locked memory in the training process, not /dev/shm.",
    ),
    "diagnose": (
        "Two numbers decide: what the loader needs, and what it got. Compare the need with "
        "the size of /dev/shm, then with what was free before the job started.",
        "free_bytes is room_bytes - used_before_bytes (df counts pages the kernel handed out, "
        "including segments nobody can see with ls any more). If the need exceeds the whole "
        "room the loader fails even in an empty /dev/shm: 'loader'. Otherwise the room was "
        "taken: 'occupied'.",
        "need = shm_needed_bytes(evidence['loader']); cause = 'loader' if need > "
        "evidence['room_bytes'] else 'occupied'; free = room_bytes - used_before_bytes. A "
        "listing with a few KiB in it does not make the room occupied.",
    ),
    "loader_settings": (
        "Fewer workers saves shared memory and starves the GPU; which knob costs shared "
        "memory without costing throughput?",
        "Keep num_workers >= min_workers; lower prefetch_factor until shm_needed_bytes of the "
        "new settings fits in free_bytes; keep the largest prefetch that fits.",
        "for w from max(num_workers, min_workers) down to min_workers: the largest p >= 1 with "
        "shm_needed_bytes({**loader, 'num_workers': w, 'prefetch_factor': p}) <= free_bytes; "
        "return the first that exists, else raise ValueError.",
    ),
    "pod_manifest": (
        "A Kubernetes container has no --shm-size. Which volume type is a tmpfs, and what "
        "does a tmpfs cost the container it is mounted in?",
        "volumes: an emptyDir with medium: Memory and a sizeLimit of about 1.5x "
        "shm_needed_bytes(loader), mounted at /dev/shm (volumeMounts). Its pages are charged "
        "to the container's memory: raise the memory limit by the sizeLimit, plus the pinned "
        "copies of the prefetched batches when pin_memory is on.",
        "sizeLimit: ceil(1.5 x need / 2**20)Mi; memory (request and limit): job_memory_bytes + "
        "sizeLimit + (workers x prefetch + 2) x batch for pinning + a little headroom, in Mi; "
        "keep the container, command and the nvidia.com/gpu limit.",
    ),
}
