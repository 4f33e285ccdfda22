"""Lab 293's checkpoint: what train.pt and model.safetensors hold, and their cleanup."""

import os

import pytest
import torch
from safetensors.torch import load_file

from labsupport.scenarios import slow_cold_start as scenario
from labsupport.scenarios.slow_cold_start import checkpoint

SMALL = checkpoint.Shape(layers=2, hidden=64, ffn=160)


@pytest.mark.parametrize("extras", sorted(checkpoint.BYTES_PER_PARAM))
def test_train_pt_holds_the_fp32_weights_and_its_extras(extras):
    with checkpoint.generated(SMALL, extras, seed=3) as ckpt:
        state = torch.load(ckpt.train_path, weights_only=True)
        assert set(state) >= {"model", "step"}
        assert ("optimizer" in state) == ("adam" in extras) and ("ema" in state) == (
            "ema" in extras
        )
        tensors = ckpt.parts["model"] + ckpt.parts.get("optimizer", 0) + ckpt.parts.get("ema", 0)
        extra = tensors - SMALL.params * checkpoint.BYTES_PER_PARAM[extras]
        assert 0 <= extra <= 4 * len(SMALL.tensors()), "only Adam's per-tensor step counters"
        served = load_file(ckpt.export_path)
        assert set(served) == set(state["model"]) == set(ckpt.hashes)
        for name, t in served.items():
            assert t.dtype == torch.bfloat16
            assert torch.equal(t, state["model"][name].to(torch.bfloat16))
            assert checkpoint.tensor_hash(t) == ckpt.hashes[name]
        assert ckpt.needed_bytes == SMALL.params * 2 <= ckpt.export_bytes
        directory = ckpt.directory
        assert directory.startswith(str(checkpoint.base_dir()))
    assert not os.path.exists(directory), "generated() removes the directory"


def test_the_weights_are_deterministic_in_the_seed():
    a, b, c = (
        checkpoint.weights(SMALL, 1),
        checkpoint.weights(SMALL, 1),
        checkpoint.weights(SMALL, 2),
    )
    name = next(iter(a))
    assert torch.equal(a[name], b[name]) and not torch.equal(a[name], c[name])


def test_sweep_removes_checkpoints_of_processes_that_are_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("SRELAB_CHECKPOINT_DIR", str(tmp_path))
    stale = tmp_path / "srelab-999999999-ckpt-x"
    stale.mkdir()
    mine = checkpoint.make(SMALL, "ema", 0)
    try:
        assert not stale.exists() and os.path.isdir(mine.directory)
    finally:
        checkpoint.remove(mine)
    assert not os.path.exists(mine.directory)
    with pytest.raises(ValueError):
        checkpoint.write(tmp_path / "bad", SMALL, "sgd", 0)


def test_variants_change_the_extras_and_the_shape():
    vs = [scenario.variant(s) for s in range(4)]
    assert {v.extras for v in vs} == set(checkpoint.BYTES_PER_PARAM)
    assert len({v.shape("check") for v in vs}) == 4
    for v in vs:
        assert v.shape("full").params > v.shape("check").params > v.shape("suite").params
    with pytest.raises(ValueError):
        scenario.variant(-1)
