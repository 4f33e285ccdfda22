"""Wrong submissions for lab 294 that must fail a check (see tests/cheats/corpus.py)."""

from tests.cheats.corpus import Cheat

HARD_CODED = """
def explain_growth(evidence):
    # what the default variant's dashboard showed once
    return {"cause": "recordings", "dimension": "length", "recompiles": 1, "graphs": 33,
            "fallback_request": None, "graph_mib": 70.0}
"""

PACKAGE_HELPER = """
from labsupport.scenarios import memory_grows_with_traffic as scenario


def explain_growth(evidence):
    # the package's variant says how the server was deployed; the counts from the evidence
    v = scenario.variant(0)
    log, requests = evidence["log"], evidence["requests"]
    base = evidence["baseline_reserved_mib"]
    steps, level = 0, base
    for row in requests:
        steps += row["reserved_mib"] > level
        level = max(level, row["reserved_mib"])
    return {
        "cause": "recordings" if v.dynamic is None else "compiles",
        "dimension": "batch" if v.batch[0] != v.batch[1] else "length",
        "recompiles": sum("Recompiling function" in line for line in log),
        "graphs": int(steps),
        "fallback_request": None,
        "graph_mib": requests[-1]["reserved_mib"] - base,
    }
"""

COPIED_SHAPES = """
def capture_shapes(seen, max_batch, max_length):
    # the default variant's shapes, copied from its run
    return [(4, 8), (4, 16), (4, 32), (4, 64), (4, 128), (4, 256)]
"""

ONE_BUCKET = """
def capture_shapes(seen, max_batch, max_length):
    # "pad everything to the maximum": one graph, and most of the compute is padding
    return [(max_batch, max_length)]
"""

EAGER_SERVE = """
def serve(step, ids, shapes):
    # the uncompiled model behind the compiled one: no graphs, no growth, no speed-up either
    return step._orig_mod(ids)
"""

EAGER_STANCE = """
import torch


def warm_up(step, shapes):
    # no warm-up; any new shape quietly runs as eager code instead of compiling
    torch.compiler.set_stance("eager_on_recompile")
"""

MARK_DYNAMIC = """
import torch


def serve(step, ids, shapes):
    # "mark the dimension dynamic": no recompiles, but a CUDA graph per size all the same
    torch._dynamo.mark_dynamic(ids, 0)
    torch._dynamo.mark_dynamic(ids, 1)
    return step(ids)
"""

LEFT_PAD = """
def serve(step, ids, shapes):
    # padding in front of each prompt (and rows in front): the positions shift
    b, n = ids.shape
    fits = [s for s in shapes if s[0] >= b and s[1] >= n]
    rows, cols = min(fits, key=lambda s: s[0] * s[1])
    padded = ids.new_zeros((rows, cols))
    padded[rows - b:, cols - n:] = ids
    return step(padded)[rows - b:, cols - n:]
"""

DIAGNOSIS = ("test_diagnosis_reads_the_log_and_the_dashboard",)
SHAPES = ("test_capture_shapes_are_few_hold_every_request_and_waste_little",)
WARM = ("test_fixed_server_serves_every_request_from_a_warm_graph",)
LOGITS = ("test_fixed_server_returns_the_models_own_logits",)

CHEATS = [
    Cheat(294, "the default run's reading, hard-coded", "hard-coded", (HARD_CODED,), DIAGNOSIS),
    Cheat(
        294,
        "cause and dimension from the package's variant",
        "package helper",
        (PACKAGE_HELPER,),
        DIAGNOSIS,
    ),  # fmt: skip
    Cheat(294, "the default variant's shapes, copied", "hard-coded", (COPIED_SHAPES,), SHAPES),
    Cheat(294, "one shape at the maximum", "debrief bypass", (ONE_BUCKET,), SHAPES),
    Cheat(294, "serve the uncompiled model", "symptom hiding", (EAGER_SERVE,), WARM),
    Cheat(294, "eager_on_recompile, no warm-up", "symptom hiding", (EAGER_STANCE,), WARM),
    Cheat(294, "mark_dynamic instead of padding", "debrief bypass", (MARK_DYNAMIC,), WARM),
    Cheat(294, "padding in front of the prompt", "debrief bypass", (LEFT_PAD,), LOGITS),
]
