"""The job's DataLoader: sizes, settings as plain values, a run without workers."""

from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig, Pace, iterate


def test_sizes_follow_shape_dtype_and_batch():
    cfg = LoaderConfig((3, 384, 384), "uint8", batch_size=10, num_workers=4, prefetch_factor=2)
    assert cfg.sample_bytes == 3 * 384 * 384
    assert cfg.batch_bytes == 10 * cfg.sample_bytes
    assert LoaderConfig((4,), "bfloat16", 2, 0, None).batch_bytes == 16


def test_settings_cross_as_plain_values_and_back():
    cfg = LoaderConfig((3, 8, 8), "float32", 4, 3, 2, pin_memory=True)
    assert LoaderConfig.from_dict(cfg.as_dict()) == cfg
    changed = cfg.with_settings(1, 4)
    assert (changed.num_workers, changed.prefetch_factor, changed.batch_size) == (1, 4, 4)
    assert "num_workers=1, prefetch_factor=4" in changed.describe()


def test_without_workers_the_loop_makes_its_own_batches_and_waits_for_each():
    cfg = LoaderConfig((3, 8, 8), "float32", 4, 0, None)
    out = iterate(cfg, steps=5, pace=Pace(read_s=0.004, step_s=0.001, warmup_s=0.0))
    assert out.error is None and out.steps_done == 5
    assert out.wait_s >= 4 * 4 * 0.004 * 0.9  # four samples read in the loop, each step
