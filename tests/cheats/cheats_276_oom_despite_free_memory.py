"""Wrong submissions for lab 276 that must fail a check they target (test_cheats.py)."""

from tests.cheats.corpus import Cheat

LARGEST = "test_largest_free_block_matches_every_graded_snapshot"
RESERVED = "test_reserved_unallocated_matches_every_graded_snapshot"
DIAGNOSIS = "test_diagnosis_names_the_cause_with_numbers_from_the_run"
PLAN = "test_fix_changes_only_what_refused_the_request"
SURVIVES = "test_fix_survives_the_batch_in_a_fresh_process"
IN_EFFECT = "test_fix_is_in_effect_in_the_rerun"

CHEATS = [
    Cheat(
        276,
        "500 MiB, the default incident's reserved-but-unallocated",
        "hard-coded",
        (
            "def reserved_unallocated_mib(snapshot):\n    return 500.0\n",
            "def largest_free_block_mib(snapshot):\n    return 100.0\n",
        ),
        (RESERVED, LARGEST),
    ),
    Cheat(
        276,
        "the default incident's cause, with this run's numbers",
        "hard-coded",
        (
            "_right = diagnose\n\n\n"
            "def diagnose(evidence):\n"
            "    found = _right(evidence)\n"
            "    found['cause'] = 'allocator'\n"
            "    return found\n",
        ),
        (DIAGNOSIS,),
    ),
    Cheat(
        276,
        "the package's old summarize() helper",
        "package helper",
        (
            "def largest_free_block_mib(snapshot):\n"
            "    from labsupport.memory import snapshot as s\n"
            "    return s.summarize(snapshot).largest_free_block_bytes / 2**20\n\n\n"
            "def reserved_unallocated_mib(snapshot):\n"
            "    from labsupport.memory import snapshot as s\n"
            "    return s.summarize(snapshot).reserved_unallocated_bytes / 2**20\n",
        ),
        (LARGEST, RESERVED),
    ),
    Cheat(
        276,
        "the scenario's own run of the default incident",
        "package helper",
        (
            "def diagnose(evidence):\n"
            "    from labsupport.scenarios import oom_despite_free_memory as sc\n"
            "    v = sc.variant(0)\n"
            "    run = sc.run(v, backend='simulator')\n"
            "    snap = run.snapshot\n"
            "    return {'cause': 'allocator',\n"
            "            'largest_free_block_mib': largest_free_block_mib(snap),\n"
            "            'reserved_unallocated_mib': reserved_unallocated_mib(snap),\n"
            "            'budget_left_mib': (v.budget_bytes - run.reserved_bytes) / 2**20,\n"
            "            'card_free_mib': run.card_free_bytes / 2**20}\n",
        ),
        (DIAGNOSIS,),
    ),
    Cheat(
        276,
        "largest single free block (near miss: neighbours not joined)",
        "debrief bypass",
        (
            "def largest_free_block_mib(snapshot):\n"
            "    sizes = [b['size'] for s in snapshot['segments'] for b in s['blocks']\n"
            "             if b['state'] == 'inactive']\n"
            "    return max(sizes, default=0) / 2**20\n",
        ),
        (LARGEST,),
    ),
    Cheat(
        276,
        "pending frees counted as free (near miss)",
        "debrief bypass",
        (
            "def largest_free_block_mib(snapshot):\n"
            "    best = 0\n"
            "    for s in snapshot['segments']:\n"
            "        run = 0\n"
            "        for b in s['blocks']:\n"
            "            run = run + b['size'] if b['state'] != 'active_allocated' else 0\n"
            "            best = max(best, run)\n"
            "    return best / 2**20\n\n\n"
            "def reserved_unallocated_mib(snapshot):\n"
            "    return sum(b['size'] for s in snapshot['segments'] for b in s['blocks']\n"
            "               if b['state'] == 'inactive') / 2**20\n",
        ),
        (LARGEST, RESERVED),
    ),
    Cheat(
        276,
        "PYTORCH_NO_CUDA_MEMORY_CACHING=1",
        "symptom hiding",
        (
            "def deployment(evidence):\n"
            "    dep = evidence['deployment']\n"
            "    return {'worker_env': {'PYTORCH_NO_CUDA_MEMORY_CACHING': '1'},\n"
            "            'server_gpu_memory_utilization': dep['server_gpu_memory_utilization']}\n",
        ),
        (PLAN,),
    ),
    Cheat(
        276,
        "lift the worker's budget",
        "symptom hiding",
        (
            "def deployment(evidence):\n"
            "    dep = evidence['deployment']\n"
            "    return {'worker_env': {'PYTORCH_ALLOC_CONF': 'per_process_memory_fraction:1.0'},\n"
            "            'server_gpu_memory_utilization': dep['server_gpu_memory_utilization']}\n",
        ),
        (PLAN,),
    ),
    Cheat(
        276,
        "raise the budget itself",
        "symptom hiding",
        (
            "def deployment(evidence):\n"
            "    dep = evidence['deployment']\n"
            "    return {'worker_env': {}, 'worker_budget_bytes': 4 * dep['worker_budget_bytes'],\n"
            "            'server_gpu_memory_utilization': dep['server_gpu_memory_utilization']}\n",
        ),
        (PLAN,),
    ),
    Cheat(
        276,
        "starve the server whatever the cause",
        "symptom hiding",
        (
            "def deployment(evidence):\n"
            "    return {'worker_env': {'PYTORCH_ALLOC_CONF': 'expandable_segments:True'},\n"
            "            'server_gpu_memory_utilization': 0.1}\n",
        ),
        (PLAN,),
    ),
    Cheat(
        276,
        "expandable segments whatever the cause (torch's closing advice)",
        "debrief bypass",
        (
            "def deployment(evidence):\n"
            "    dep = evidence['deployment']\n"
            "    return {'worker_env': {'PYTORCH_ALLOC_CONF': 'expandable_segments:True'},\n"
            "            'server_gpu_memory_utilization': dep['server_gpu_memory_utilization']}\n",
        ),
        (PLAN, SURVIVES),
    ),
    Cheat(
        276,
        "max_split_size_mb:128 (the classic answer)",
        "debrief bypass",
        (
            "_right = deployment\n\n\n"
            "def deployment(evidence):\n"
            "    plan = _right(evidence)\n"
            "    if plan['worker_env']:\n"
            "        plan['worker_env'] = {'PYTORCH_ALLOC_CONF': 'max_split_size_mb:128'}\n"
            "    return plan\n",
        ),
        (IN_EFFECT, SURVIVES),
    ),
    Cheat(
        276,
        "garbage_collection_threshold, an automatic empty_cache()",
        "debrief bypass",
        (
            "_right = deployment\n\n\n"
            "def deployment(evidence):\n"
            "    plan = _right(evidence)\n"
            "    if plan['worker_env']:\n"
            "        plan['worker_env'] = {'PYTORCH_ALLOC_CONF': "
            "'garbage_collection_threshold:0.5'}\n"
            "    return plan\n",
        ),
        (SURVIVES, IN_EFFECT),
    ),
]
