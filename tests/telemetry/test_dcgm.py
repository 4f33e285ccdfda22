"""A scrape sees the latest sample; DCGM's units and labels."""

import math

import numpy as np

from labsupport.telemetry import dcgm, trace


def _tiny():
    columns = {c: np.full(3, np.nan) for c in trace.COLUMNS}
    columns["t_s"] = np.array([0.0, 1.0, 2.0])
    columns["temp_c"] = np.array([40.0, 41.0, 42.0])
    columns["dram_bw_util"] = np.array([0.0, 50.0, 90.0])
    card = trace.Card(name="card", slowdown_c=89, gpu_max_op_c=87)
    return trace.Trace(columns, np.array(["a", "a", "b"]), card, "made up")


def test_scrape_takes_the_latest_sample_at_or_before_each_time():
    s = dcgm.scrape(_tiny(), at_s=[-1.0, 0.0, 1.5, 9.0])
    assert math.isnan(s["DCGM_FI_DEV_GPU_TEMP"][0])
    assert s["DCGM_FI_DEV_GPU_TEMP"][1:] == [40.0, 41.0, 42.0]
    assert s["DCGM_FI_PROF_DRAM_ACTIVE"][2:] == [0.5, 0.9]  # GPM % -> DCP ratio
    assert "DCGM_FI_DEV_SM_CLOCK" not in s  # the trace has no SM clock: no made-up zeros
    assert s["DCGM_FI_DEV_SLOWDOWN_TEMP"] == [89.0] * 4


def test_labels_are_dcgm_exporters_and_stable():
    card = trace.Card(name="NVIDIA H100 80GB HBM3")
    a = dcgm.labels(gpu=2, card=card, hostname="n1")
    assert set(a) == {"gpu", "UUID", "pci_bus_id", "device", "modelName", "hostname"}
    assert a == dcgm.labels(gpu="2", card=card, hostname="n1")
    assert a["UUID"] != dcgm.labels(gpu=3, card=card, hostname="n1")["UUID"]


def test_card_fields_leave_out_what_the_card_did_not_report():
    fields = dcgm.card_fields(trace.Card(name="x", slowdown_c=90))
    assert fields == {"DCGM_FI_DEV_SLOWDOWN_TEMP": 90.0}
