"""Allocator settings parse as PyTorch parses PYTORCH_ALLOC_CONF (c10/core/AllocatorConfig.cpp)."""

import pytest

from labsupport.memory.config import SIZE_MAX, AllocatorConfig, MiB, format_size


@pytest.mark.parametrize(
    "text, field, expected",
    [
        ("", "expandable_segments", False),
        ("expandable_segments:True", "expandable_segments", True),
        (" expandable_segments : True ", "expandable_segments", True),  # spaces are dropped
        ("max_split_size_mb:128", "max_split_size_bytes", 128 * MiB),
        ("max_split_size_mb:20", "max_split_size_bytes", 20 * MiB),
        ("", "max_split_size_bytes", SIZE_MAX),
        ("max_non_split_rounding_mb:64", "max_non_split_rounding_bytes", 64 * MiB),
        ("garbage_collection_threshold:0.6", "garbage_collection_threshold", 0.6),
        ("roundup_power2_divisions:4", "roundup_power2_divisions", (4,) * 16),
        ("backend:native,expandable_segments:False", "backend", "native"),
        ("release_lock_on_cudamalloc:True", "release_lock_on_cudamalloc", True),
    ],
)
def test_parse_values(text, field, expected):
    assert getattr(AllocatorConfig.parse(text), field) == expected


def test_bracketed_roundup_divisions():
    """Intervals in MiB, one bucket per power of two; the first value also fills the buckets
    below it and '>' fills from the last named bucket on (overwriting it, as torch does)."""
    cfg = AllocatorConfig.parse("roundup_power2_divisions:[64:8,256:4,>:1]")
    assert cfg.roundup_power2_divisions == (8,) * 7 + (0,) + (1,) * 8
    assert cfg.divisions_for(3 * MiB) == 8 and cfg.divisions_for(64 * MiB) == 8
    assert cfg.divisions_for(128 * MiB) == 0 and cfg.divisions_for(4096 * MiB) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_split_size_mb:19", "too small"),
        ("garbage_collection_threshold:1.5", "invalid"),
        ("expandable_segments:yes", "True/False"),
        ("expandable_segment:True", "Unrecognized CachingAllocator option"),
        ("expandable_segments", "expected"),
        ("backend:magic", "Unknown allocator backend"),
    ],
)
def test_bad_settings_are_rejected_with_torchs_wording(text, message):
    with pytest.raises(ValueError, match=message):
        AllocatorConfig.parse(text)


def test_new_name_wins_and_the_old_name_is_an_alias():
    both = AllocatorConfig.from_env(
        {
            "PYTORCH_ALLOC_CONF": "expandable_segments:True",
            "PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128",
        }
    )
    assert both.source == "PYTORCH_ALLOC_CONF" and both.expandable_segments
    assert both.max_split_size_bytes == SIZE_MAX and not both.warnings
    old = AllocatorConfig.from_env({"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"})
    assert old.expandable_segments and not old.warnings  # torch 2.12 dropped the warning
    assert AllocatorConfig.from_env({}) == AllocatorConfig()


@pytest.mark.parametrize(
    "version, warns",
    [("2.7.1", False), ("2.8.0", True), ("2.11.0+cu128", True), ("2.12.0", False), ("", False)],
)
def test_the_old_name_warned_from_2_8_to_2_11(version, warns):
    env = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    cfg = AllocatorConfig.from_env(env, torch_version=version)
    assert bool(cfg.warnings) == warns
    assert not warns or cfg.warnings[0].startswith("PYTORCH_CUDA_ALLOC_CONF is deprecated")


def test_per_process_memory_fraction_from_the_environment():
    """torch 2.13 takes the cap from PYTORCH_ALLOC_CONF too; the simulator applies it."""
    from labsupport.memory.simulator import CachingAllocatorSim

    cfg = AllocatorConfig.parse("per_process_memory_fraction:0.5")
    assert cfg.per_process_memory_fraction == 0.5
    sim = CachingAllocatorSim(cfg, total_bytes=1000 * MiB)
    assert sim.set_fraction and sim.allowed_memory_maximum == 500 * MiB
    with pytest.raises(ValueError, match=r"set it in \[0.0, 1.0\]"):
        AllocatorConfig.parse("per_process_memory_fraction:1.5")


def test_torch_2_9_1_ignored_the_new_name_for_expandable_segments():
    """pytorch#183387: reproduced on request, so a lab can show why to read the snapshot."""
    env = {"PYTORCH_ALLOC_CONF": "expandable_segments:True"}
    assert not AllocatorConfig.from_env(env, torch_version="2.9.1").expandable_segments
    assert AllocatorConfig.from_env(env, torch_version="2.11.0").expandable_segments


def test_settings_dict_has_the_snapshot_keys():
    d = AllocatorConfig.parse("expandable_segments:True").settings_dict()
    assert d["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    assert d["expandable_segments"] is True and d["max_split_size"] == -1
    assert sorted(d["roundup_power2_divisions"], key=int)[-1] == "32768"


@pytest.mark.parametrize(
    "size, text",
    [
        (0, "0 bytes"),
        (1024, "1024 bytes"),
        (1536, "1.50 KiB"),
        (500 * MiB, "500.00 MiB"),
        (1100 * MiB, "1.07 GiB"),
    ],
)
def test_format_size_like_c10(size, text):
    assert format_size(size) == text
