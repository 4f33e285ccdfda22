from labsupport.serving.kv_cache import BlockAllocator
from labsupport.serving.requests import EngineCounters, Request, SamplingParams
from labsupport.serving.scheduler import Scheduler


def _req(rid, n_prompt, max_tokens=8):
    return Request(rid, list(range(1, n_prompt + 1)), SamplingParams(max_tokens=max_tokens))


def _sched(num_blocks, block_size=4, **kw):
    return Scheduler(BlockAllocator(num_blocks, block_size), EngineCounters(), **kw)


def test_admits_in_order_while_seats_last():
    s = _sched(100, max_num_seqs=2)
    for rid in "abc":
        s.add(_req(rid, 3))
    prefill, decode = s.schedule()
    assert [r.request_id for r in prefill] == ["a", "b"] and decode == []
    assert [r.request_id for r in s.waiting] == ["c"]
    assert s.counters.prompt_tokens == 6


def test_head_of_queue_waits_for_blocks_and_nobody_jumps_it():
    s = _sched(4)  # 16 token slots
    s.add(_req("big", 12))  # 3 blocks
    s.add(_req("huge", 9))  # 3 blocks: does not fit beside "big"
    s.add(_req("tiny", 1))  # would fit, but waits behind "huge"
    prefill, _ = s.schedule()
    assert [r.request_id for r in prefill] == ["big"]
    assert [r.request_id for r in s.waiting] == ["huge", "tiny"]


def test_running_requests_grow_and_the_newest_is_preempted_when_full():
    s = _sched(4, block_size=2)
    a, b = _req("a", 3), _req("b", 3)
    s.add(a)
    s.add(b)
    s.schedule()  # both prefilled: 2 blocks each, pool full
    for r in (a, b):
        r.output_ids.append(7)  # 4 tokens each: still 2 blocks
    _, decode = s.schedule()
    assert decode == [a, b]
    for r in (a, b):
        r.output_ids.append(7)  # 5 tokens: each needs a third block, none free
    prefill, decode = s.schedule()
    assert decode == [a] and prefill == []
    assert list(s.waiting) == [b] and b.num_preemptions == 1 and s.counters.preemptions == 1
    assert s.allocator.block_table("b") == []
    s.allocator.check_invariants()


def test_a_preempted_request_is_recomputed_with_its_output():
    s = _sched(8, block_size=2)
    r = _req("a", 3)
    s.add(r)
    s.schedule()
    r.output_ids += [9, 9]
    s._preempt(r)
    prefill, _ = s.schedule()
    assert prefill == [r] and s.counters.recomputed_tokens == 5
    assert len(s.allocator.block_table("a")) == 3


def test_prefill_budget_limits_a_step_but_never_starves_the_first():
    s = _sched(100, max_prefill_tokens=10)
    s.add(_req("a", 30))
    s.add(_req("b", 5))
    prefill, _ = s.schedule()
    assert [r.request_id for r in prefill] == ["a"]  # over budget alone: still admitted
    prefill, _ = s.schedule()
    assert [r.request_id for r in prefill] == ["b"]
