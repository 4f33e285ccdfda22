import os
import tempfile

import torch

from labsupport import isolate
from labsupport.serving.model import ModelConfig, TinyLM
from labsupport.serving.weights import (
    ephemeral_checkpoint,
    load_model,
    persistent_checkpoint,
    read_metadata,
    write_checkpoint,
)

CFG = ModelConfig(max_model_len=256)


def test_roundtrip_gives_the_seeded_model_and_the_padding():
    with isolate.temp_dir() as d:
        path = d / "m.safetensors"
        size = write_checkpoint(path, CFG, seed=3, weights_mb=5)
        assert size > 5 * 2**20
        assert read_metadata(str(path))["seed"] == "3"
        model, padding, timings = load_model(str(path), "cpu")
    expected = TinyLM(CFG).init_weights(3).state_dict()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in expected.items())
    assert model.cfg == CFG
    assert sum(p.numel() for p in padding) == 5 * 2**20
    assert timings.file_bytes == size and timings.read_s > 0 and timings.device == "cpu"
    assert set(timings.as_dict()) >= {"generate_s", "read_s", "to_device_s", "warmup_s", "total_s"}


def _ours():
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"srelab-{os.getpid()}-")}


def test_ephemeral_checkpoint_is_unlinked_while_in_use():
    before = _ours()
    with ephemeral_checkpoint(CFG, weights_mb=1) as ckpt:
        assert ckpt.path.startswith("/proc/self/fd/")
        assert _ours() == before  # nothing on disk even now
        model, _, _ = load_model(ckpt.path)
        assert ckpt.generate_s > 0 and ckpt.file_bytes > 2**20
    assert _ours() == before
    assert model.cfg == CFG


def test_persistent_checkpoint_is_written_once():
    with isolate.temp_dir() as d:
        path = d / "cache" / "tiny.safetensors"
        with persistent_checkpoint(path, CFG) as first:
            assert first.generate_s > 0
        with persistent_checkpoint(path, CFG) as second:
            assert second.generate_s == 0.0 and second.file_bytes == first.file_bytes
        assert [p.name for p in path.parent.iterdir()] == ["tiny.safetensors"]


def test_read_time_grows_with_the_checkpoint_size():
    with isolate.temp_dir() as d:
        small, big = d / "s.safetensors", d / "b.safetensors"
        write_checkpoint(small, CFG, weights_mb=0)
        write_checkpoint(big, CFG, weights_mb=256)
        smalls, bigs = [], []
        for _ in range(5):  # interleaved: a busy spell slows both arms alike
            smalls.append(load_model(str(small))[2].read_s)
            bigs.append(load_model(str(big))[2].read_s)
    t_small, t_big = min(smalls), min(bigs)
    assert t_big > 1.5 * t_small, (t_small, t_big)  # about 100x the bytes
