"""Wrong submissions for lab 284 (DataLoader workers die) that must fail a check they target.

Each is the solution with one exercise replaced. Most fail a check on written inputs (no
workload); the rest reuse the runs the grading of the solution measured.
"""

from tests.cheats.corpus import Cheat

NEED = ("test_shm_needed_matches_written_loaders_and_measured_peaks",)
CAUSE = ("test_diagnosis_names_the_cause_with_this_runs_numbers",)
SETTINGS = (
    "test_loader_settings_fit_the_free_room_and_keep_the_workers",
    "test_loader_settings_train_to_the_end_in_the_same_room",
)
POD = ("test_pod_manifest_sizes_shm_and_memory_from_the_need", "test_pod_runs_the_job_to_the_end")

# The incident's Pod with a volume on /dev/shm: {medium}, {size} and {memory} filled in.
MANIFEST = '''
def _pod(size: str, memory: str, medium: str = "medium: Memory, ") -> str:
    return f"""\\
apiVersion: v1
kind: Pod
metadata:
  name: finetune-vlm
spec:
  restartPolicy: OnFailure
  containers:
  - name: trainer
    image: registry.example.com/finetune-vlm:2026.11
    command: [python, train.py]
    resources:
      limits: {{memory: {memory}, nvidia.com/gpu: 1}}
    volumeMounts:
    - {{name: dshm, mountPath: /dev/shm}}
  volumes:
  - name: dshm
    emptyDir: {{{medium}sizeLimit: {size}}}
"""
'''

CHEATS = [
    Cheat(
        284,
        "the need of the default variant's loader, whatever the loader",
        "hard-coded",
        ("def shm_needed_bytes(loader):\n    return 84 * 2**20\n",),
        NEED,
    ),
    Cheat(
        284,
        "the default variant's diagnosis, whatever the evidence",
        "hard-coded",
        (
            "def diagnose(evidence):\n"
            "    return {'cause': 'loader', 'needed_bytes': 84 * 2**20,\n"
            "            'free_bytes': 64 * 2**20}\n",
        ),
        CAUSE,
    ),
    Cheat(
        284,
        "the cause read from the package's variant table",
        "package helper",
        (
            "from labsupport.scenarios import dataloader_bus_error as _scenario\n\n\n"
            "def diagnose(evidence):\n"
            "    v = _scenario.variant(0)\n"
            "    cause = 'occupied' if v.found_bytes else 'loader'\n"
            "    free = evidence['room_bytes'] - evidence['used_before_bytes']\n"
            "    return {'cause': cause, 'needed_bytes': shm_needed_bytes(evidence['loader']),\n"
            "            'free_bytes': free}\n",
        ),
        CAUSE,
    ),
    Cheat(
        284,
        "the cause from ls: anything listed in /dev/shm means it was occupied",
        "debrief bypass",
        (
            "def diagnose(evidence):\n"
            "    cause = 'occupied' if evidence['listing_before'] else 'loader'\n"
            "    free = evidence['room_bytes'] - evidence['used_before_bytes']\n"
            "    return {'cause': cause, 'needed_bytes': shm_needed_bytes(evidence['loader']),\n"
            "            'free_bytes': free}\n",
        ),
        CAUSE,
    ),
    Cheat(
        284,
        "batch x workers x prefetch (the package's batch size, the blog's formula)",
        "debrief bypass",
        (
            "from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig\n\n\n"
            "def shm_needed_bytes(loader):\n"
            "    if loader['num_workers'] == 0:\n"
            "        return 0\n"
            "    cfg = LoaderConfig.from_dict(loader)\n"
            "    return cfg.batch_bytes * cfg.num_workers * cfg.prefetch_factor\n",
        ),
        NEED,
    ),
    Cheat(
        284,
        "num_workers=0: no shared memory at all, the GPU waits for every batch",
        "symptom hiding",
        (
            "def loader_settings(loader, free_bytes, min_workers):\n"
            "    return {'num_workers': 0, 'prefetch_factor': None}\n",
        ),
        SETTINGS,
    ),
    Cheat(
        284,
        "one worker, prefetch 1: fits anywhere, the GPU waits",
        "symptom hiding",
        (
            "def loader_settings(loader, free_bytes, min_workers):\n"
            "    return {'num_workers': 1, 'prefetch_factor': 1}\n",
        ),
        SETTINGS,
    ),
    Cheat(
        284,
        "the file_system sharing strategy, same workers and prefetch",
        "debrief bypass",
        (
            "def loader_settings(loader, free_bytes, min_workers):\n"
            "    return {'num_workers': loader['num_workers'],\n"
            "            'prefetch_factor': loader['prefetch_factor'],\n"
            "            'sharing_strategy': 'file_system'}\n",
        ),
        SETTINGS,
    ),
    Cheat(
        284,
        "a 64Gi /dev/shm and a limit to match: room for anything",
        "symptom hiding",
        (
            MANIFEST + "\n\ndef pod_manifest(loader, job_memory_bytes):\n"
            "    return _pod('64Gi', '80Gi')\n",
        ),  # fmt: skip
        POD,
    ),
    Cheat(
        284,
        "30% of the node's 2 TiB, memory limit left as it was",
        "debrief bypass",
        (
            MANIFEST + "\n\ndef pod_manifest(loader, job_memory_bytes):\n"
            "    return _pod('600Gi', '7Gi')\n",
        ),  # fmt: skip
        POD,
    ),
    Cheat(
        284,
        "the right sizeLimit, the incident's 7Gi memory limit for every job",
        "hard-coded",
        (
            MANIFEST + "\n\ndef pod_manifest(loader, job_memory_bytes):\n"
            "    import math\n"
            "    size = math.ceil(1.5 * shm_needed_bytes(loader) / 2**20)\n"
            "    return _pod(f'{size}Mi', '7Gi')\n",
        ),
        POD,
    ),
    Cheat(
        284,
        "an emptyDir on the node's disk (no medium: Memory)",
        "symptom hiding",
        (
            MANIFEST + "\n\ndef pod_manifest(loader, job_memory_bytes):\n"
            "    size = 2 * shm_needed_bytes(loader) // 2**20\n"
            "    memory = (job_memory_bytes + 4 * shm_needed_bytes(loader)) // 2**20\n"
            "    return _pod(f'{size}Mi', f'{memory}Mi', medium='')\n",
        ),
        POD,
    ),
]
