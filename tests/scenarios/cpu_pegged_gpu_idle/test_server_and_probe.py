import numpy as np
import pytest

from labsupport import bpe
from labsupport.scenarios import cpu_pegged_gpu_idle as lab
from labsupport.scenarios.cpu_pegged_gpu_idle import probe, server


@pytest.mark.timeout(120)
def test_a_window_without_long_texts_serves_everything_at_step_cadence():
    scale = lab.Scale(warmup_s=0.2, duration_s=1.5, device="cpu")
    run = server.serve("as shipped", None, lab.variant(1), scale, long_texts=False)
    assert run.requests and all(r.served for r in run.requests)
    assert np.all(run.step_ms >= server.STEP_DEVICE_MS - 0.5)
    assert run.lag_ms.size > 50 and run.cpu_frac.size > 5
    assert not run.tampered and not run.children_left


@pytest.mark.timeout(120)
def test_the_probe_sees_what_start_up_code_does():
    ranks = bpe.load().ranks
    shipped = probe.probe(None, ranks, max_model_len=16)
    assert shipped["plain"]["ok"] and shipped["fit"]["ok"]
    assert shipped["over"]["outcome"] == "RuntimeError"  # tokenized what cannot fit
    assert shipped["cap_chars"] == 16 * bpe.load().longest_token_chars

    def reject_all(srv):
        async def tokenize(text):
            srv.reject("no")

        srv.tokenize = tokenize

    got = probe.probe(reject_all, ranks, max_model_len=16)
    assert got["fit"]["outcome"] == "rejected" and got["over"]["outcome"] == "rejected"
