"""Lab 293's measurements: cold loads really cold, warm ones warm, the trial of a loader."""

import pytest

from labsupport import isolate, portable
from labsupport.scenarios.slow_cold_start import checkpoint, measure, plots

SHAPE = checkpoint.Shape(layers=2, hidden=256, ffn=512)
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def ckpt():
    with checkpoint.generated(SHAPE, "adam", seed=5) as made:
        yield made


def _safetensors(directory, device):
    import os

    from safetensors.torch import load_file

    return load_file(os.path.join(directory, "model.safetensors"), device=device)


def test_the_profile_is_cold_then_warm_and_counts_the_bytes(ckpt):
    r = isolate.run_function(measure.__name__ + ":profile", ckpt.directory, ckpt.needed_bytes,
                             device="cpu", timeout_s=120)  # fmt: skip
    assert r.ok, r.error
    p = r.value
    cold, warm = p["cold"], p["warm"]
    assert cold["resident_before"] < 0.05 and warm["resident_before"] > 0.5
    assert cold["read_bytes"] >= 0.9 * ckpt.train_bytes and warm["read_bytes"] < 2**20
    assert cold["rchar"] >= 0.9 * ckpt.train_bytes <= warm["rchar"], "read() calls, cold or warm"
    assert p["file_bytes"] == ckpt.train_bytes and p["needed_bytes"] == ckpt.needed_bytes


def test_the_table_and_the_trial(ckpt):
    r = isolate.run_function(measure.__name__ + ":table", ckpt.directory, "cpu", timeout_s=120)
    assert r.ok, r.error
    loads = {(x.loader, x.cold): x for x in r.value}
    assert {name for name, _ in loads} == set(measure.LOADERS)
    st = loads[("safetensors to device", True)]
    assert st.rchar < 2**16 and st.read_bytes >= 0.9 * ckpt.needed_bytes, "mapped, not read()"
    assert loads[("torch.load mmap", True)].rchar < 0.5 * ckpt.train_bytes, "mapped"
    assert len(plots.loaders(r.value, title="t").axes) == 1
    t = isolate.run_function(measure.__name__ + ":trial", ckpt.directory,
                             portable.portable(_safetensors), "cpu", timeout_s=120)  # fmt: skip
    assert t.ok and t.contained, t.error
    trial = t.value
    assert [x.loader for x in trial.loads] == ["production", "yours", "yours", "production"]
    assert all(x.cold and x.resident_before < 0.05 for x in trial.loads)
    assert {n: h for n, (_, _, _, h) in trial.tensors.items()} == ckpt.hashes
    assert trial.coldest("production") > trial.coldest("yours")


def test_a_loader_that_returns_no_dict_fails_clearly(ckpt):
    t = isolate.run_function(measure.__name__ + ":trial", ckpt.directory,
                             portable.portable(_not_a_dict), "cpu", timeout_s=120)  # fmt: skip
    assert not t.ok and "dict of tensors" in t.error


def _not_a_dict(directory, device):
    return [1, 2]
