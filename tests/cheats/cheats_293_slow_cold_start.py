"""Lab 293's cheats: wrong submissions that must fail a check they target."""

from tests.cheats.corpus import Cheat

DIAGNOSIS = ("test_where_the_time_goes_matches_the_profiles",)

HARD_CODED = """
def where_the_time_goes(profile):
    # what variant 0's start measured on one machine
    return {"storage_s": 0.6, "loader_s": 1.4, "needless_bytes": 204_513_699, "bound": "loader"}
"""

FROM_THE_LAYOUT = '''
def where_the_time_goes(profile):
    """The needless bytes from the package's own layout of the training checkpoint."""
    from labsupport.scenarios import slow_cold_start as scenario
    from labsupport.scenarios.slow_cold_start import checkpoint

    v = scenario.variant(0)
    per_param = checkpoint.BYTES_PER_PARAM[v.extras]
    needed = profile["needed_bytes"]
    cold, warm = profile["cold"], profile["warm"]
    storage = cold["wall_s"] - warm["wall_s"]
    return {
        "storage_s": storage,
        "loader_s": warm["wall_s"],
        "needless_bytes": needed * per_param // checkpoint.SERVED - needed,
        "bound": "storage" if storage > warm["wall_s"] else "loader",
    }
'''

IT_IS_THE_STORAGE = '''
def where_the_time_goes(profile):
    """The classic reading: a slow cold start is slow storage, all of it."""
    return {
        "storage_s": profile["cold"]["wall_s"],
        "loader_s": 0.0,
        "needless_bytes": 0,
        "bound": "storage",
    }
'''

REBUILT_FROM_THE_GENERATOR = '''
def load_weights(directory, device):
    """Rebuild the weights from the package's generator instead of reading the files."""
    import torch

    from labsupport.scenarios import slow_cold_start as scenario
    from labsupport.scenarios.slow_cold_start import checkpoint

    shape = scenario.variant(0).shape("check")
    return {k: v.to(torch.bfloat16).to(device) for k, v in checkpoint.weights(shape, 0).items()}
'''

EMPTY_TENSORS_OF_THE_RIGHT_SHAPE = '''
def load_weights(directory, device):
    """Fast: tensors of the right names, shapes and dtype, never filled."""
    import json
    import os
    import struct

    import torch

    with open(os.path.join(directory, "model.safetensors"), "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {
        name: torch.empty(meta["shape"], dtype=torch.bfloat16, device=device)
        for name, meta in header.items()
        if name != "__metadata__"
    }
'''

FASTER_STORAGE_WILL_DO = '''
def load_weights(directory, device):
    """Keep production's loader: the new storage class will fix the cold start."""
    import os

    import torch

    state = torch.load(os.path.join(directory, "train.pt"), map_location="cpu", weights_only=False)
    return {k: v.to(torch.bfloat16).to(device) for k, v in state["model"].items()}
'''

CHEATS = [
    Cheat(293, "one machine's numbers", "hard-coded", (HARD_CODED,), DIAGNOSIS),
    Cheat(293, "bytes from the package's layout", "package helper", (FROM_THE_LAYOUT,), DIAGNOSIS),
    Cheat(293, "it is all the storage", "debrief bypass", (IT_IS_THE_STORAGE,), DIAGNOSIS),
    Cheat(
        293,
        "weights rebuilt from the package's generator",
        "package helper",
        (REBUILT_FROM_THE_GENERATOR,),
        ("test_load_weights_reads_them_from_storage_itself",),
    ),
    Cheat(
        293,
        "empty tensors of the right shape",
        "symptom hiding",
        (EMPTY_TENSORS_OF_THE_RIGHT_SHAPE,),
        ("test_load_weights_returns_the_weights_the_server_runs",),
    ),
    Cheat(
        293,
        "production's loader on faster storage",
        "debrief bypass",
        (FASTER_STORAGE_WILL_DO,),
        ("test_load_weights_is_faster_cold_than_production",),
    ),
]
