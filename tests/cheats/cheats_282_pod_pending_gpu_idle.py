"""Wrong submissions for lab 282 (pod pending while a GPU looks idle) that must fail a check.

Each is the solution with one exercise replaced.
"""

from tests.cheats.corpus import Cheat

DIAGNOSIS = ("test_diagnosis_names_the_cause_and_its_evidence",)
SCHEDULES = "test_fixed_manifest_schedules_and_evicts_nothing_else"
ONLY = "test_fixed_manifest_changes_only_what_the_cause_needs"

_EDIT = """
import yaml


def _edit(manifest, change):
    obj = yaml.safe_load(manifest)
    change(obj["spec"]["template"]["spec"])
    return yaml.safe_dump(obj)
"""

CHEATS = [
    Cheat(
        282,
        "the default incident's answer, whatever the evidence",
        "hard-coded",
        (
            "def diagnose(evidence):\n"
            "    return {'cause': 'idle_pod', 'culprit': 'research/jupyter-alice-0'}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        282,
        "the scenario's own variant object names the cause",
        "package helper",
        (
            "from labsupport.scenarios import pod_pending_gpu_idle as _s\n"
            "\n\n"
            "def diagnose(evidence):\n"
            "    v = _s.variant(0)\n"
            "    return {'cause': v.cause, 'culprit': v.idle_pod}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        282,
        "blame the first FailedScheduling reason (Insufficient -> idle pod)",
        "debrief bypass",
        (
            "def diagnose(evidence):\n"
            "    pod = evidence['describe_pod']\n"
            "    if 'untolerated taint' in pod:\n"
            "        return {'cause': 'untolerated_taint', 'culprit': ''}\n"
            "    if \"didn't match\" in pod and 'Insufficient' not in pod:\n"
            "        return {'cause': 'selector_typo', 'culprit': ''}\n"
            "    return {'cause': 'idle_pod', 'culprit': ''}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        282,
        "tolerate every taint and drop the selector: it starts somewhere",
        "symptom hiding",
        (
            _EDIT + "\n\ndef fixed_manifest(manifest, diagnosis):\n"
            "    def change(spec):\n"
            "        spec['tolerations'] = [{'operator': 'Exists'}]\n"
            "        spec.pop('nodeSelector', None)\n"
            "    return _edit(manifest, change)\n",
        ),
        (SCHEDULES, ONLY),
    ),
    Cheat(
        282,
        "nodeName to the node with room: skip the scheduler",
        "debrief bypass",
        (
            _EDIT + "\n\ndef fixed_manifest(manifest, diagnosis):\n"
            "    def change(spec):\n"
            "        spec['nodeName'] = 'gpu-h100-4'\n"
            "    return _edit(manifest, change)\n",
        ),
        (SCHEDULES, ONLY),
    ),
    Cheat(
        282,
        "ask for one GPU so it fits anywhere",
        "symptom hiding",
        (
            _EDIT + "\n\ndef fixed_manifest(manifest, diagnosis):\n"
            "    def change(spec):\n"
            "        spec['containers'][0]['resources']['limits']['nvidia.com/gpu'] = 1\n"
            "        spec['priorityClassName'] = 'llm-serving'\n"
            "    return _edit(manifest, change)\n",
        ),
        (ONLY,),
    ),
    Cheat(
        282,
        "the burst pool for every cause",
        "hard-coded",
        (
            _EDIT + "\n\ndef fixed_manifest(manifest, diagnosis):\n"
            "    def change(spec):\n"
            "        spec['nodeSelector'] = {'pool': 'burst'}\n"
            "        spec['tolerations'] = [{'key': 'pool', 'value': 'burst', "
            "'effect': 'NoSchedule'}]\n"
            "    return _edit(manifest, change)\n",
        ),
        (SCHEDULES,),
    ),
]
