"""Distributed jobs on one machine: real torch.distributed ranks on loopback, and their traces.

    >>> from labsupport.distributed import flight, launch
    >>> flight.op_name("gloo:all_gather")
    'all_gather'
    >>> launch.GRACE_S
    3.0

- `launch.run_job(entry, *args, world_size=2, timeout_s=..., window_s=..., env=...)` starts
  the ranks as real processes (gloo over loopback, a FileStore shared by descriptor), stamps
  their progress, stops a group that hangs or lost a rank, and returns a `JobRun`: each rank's
  exit, error, value and flight-recorder entries.
- `rank` is the process each rank runs (`python -m labsupport.distributed.rank`): it joins the
  group, runs the entry, and dumps its flight recorder on a failed collective when
  `TORCH_NCCL_DUMP_ON_TIMEOUT=1` (gloo has no watchdog: the rank plays its part).
- `flight` reads flight-recorder entries (`Collective`) and lines ranks up (`table`).
- `examples` holds small entries for the docs and tests.

NCCL refuses two ranks on one GPU, so ranks here always use gloo; with a GPU their tensors
live on it (gloo stages CUDA tensors through the host).
"""
