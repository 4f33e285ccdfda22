"""Flight-recorder entries read into Collective records, the settings, the table."""

from labsupport.distributed import flight
from tests.labs.truth import collective_timeout as truth


def test_settings_read_the_new_name_first_and_the_dump_switch():
    assert flight.settings({}) == (0, False)
    assert flight.settings({"TORCH_NCCL_TRACE_BUFFER_SIZE": "20"}) == (20, False)
    both = {"TORCH_FR_BUFFER_SIZE": "8", "TORCH_NCCL_TRACE_BUFFER_SIZE": "20"}
    assert flight.settings(both) == (8, False)
    assert flight.settings({"TORCH_FR_BUFFER_SIZE": "x", "TORCH_NCCL_DUMP_ON_TIMEOUT": "1"}) == (
        0,
        True,
    )
    assert flight.settings({"TORCH_NCCL_DUMP_ON_TIMEOUT": "true"}) == (0, False)


def test_an_entry_is_finished_when_retired_or_completed():
    gloo_done = flight.Collective.of(truth.entry(3, "all_gather", ((4,),), True))
    gloo_waiting = flight.Collective.of(truth.entry(4, "broadcast", ((8,),), False))
    nccl_done = flight.Collective.of(truth.entry(5, "all_reduce", ((8, 2),), True, backend="nccl"))
    nccl_started = flight.Collective.of(
        truth.entry(6, "all_reduce", ((8, 2),), False, backend="nccl")
    )
    assert (gloo_done.op, gloo_done.completed, gloo_done.state) == ("all_gather", True, "scheduled")
    assert not gloo_waiting.completed
    assert nccl_done.completed and nccl_done.sizes == ((8, 2),)
    assert (nccl_started.state, nccl_started.completed) == ("started", False)


def test_collectives_are_sorted_and_point_to_point_left_out():
    entries = [
        truth.entry(2, "all_reduce", ((1,),), True),
        truth.entry(1, "broadcast", ((1,),), True),
    ]
    entries.append({**truth.entry(3, "send", ((1,),), True), "is_p2p": True})
    assert [c.seq for c in flight.collectives(entries)] == [1, 2]


def test_the_table_lines_ranks_up_by_sequence_number():
    text = flight.table(truth.HAND_MADE, last=2)
    lines = text.splitlines()
    assert lines[0].split() == ["seq", "rank", "0", "rank", "1"]
    assert lines[1].startswith("4") and lines[2].startswith("5")
    assert "all_gather[4] WAITING" in lines[2] and "all_reduce[8x16] WAITING" in lines[2]
    gap = flight.table({0: truth.HAND_MADE[0], 1: truth.HAND_MADE[1][:-1]}, last=1)
    assert gap.splitlines()[1].split()[-1] == "-"
