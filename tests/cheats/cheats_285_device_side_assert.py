"""Wrong submissions for lab 285 (device-side assert) that must fail a check they target.

Each is the solution with one exercise replaced. Diagnosis cheats fail on the reruns of the
check's failed steps; check_request cheats on its table of requests (no workload);
device_alive cheats in the trial process that goes from healthy to a dead device.
"""

from tests.cheats.corpus import Cheat

DIAGNOSIS = ("test_reruns_with_your_env_locate_the_failure_and_diagnose_names_it",)
TABLE = ("test_check_request_refuses_out_of_range_ids_in_every_field_and_names_them",)
TRIALS = ("test_device_alive_tells_a_dead_device_from_a_healthy_one",)

CHEATS = [
    Cheat(
        285,
        "diagnosis: the default variant's answer, hard-coded",
        "hard-coded",
        (
            "def diagnose(evidence):\n"
            "    return {'request_id': 'req-0008', 'token_id': 514, 'recoverable': False,\n"
            "            'op': 'x = self.tok_emb(token_ids) + self.pos_emb(positions)'}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        285,
        "check_request: ids checked against a hard-coded 512",
        "hard-coded",
        (
            "def check_request(body, vocab_size):\n"
            "    ids = body.get('prompt') if isinstance(body.get('prompt'), list) else []\n"
            "    bad = [t for t in ids if isinstance(t, int) and not 0 <= t < 512]\n"
            "    if bad:\n"
            "        return {'error': {'message': f'Token id {bad[0]} is out of vocabulary',\n"
            "                          'type': 'BadRequestError', 'param': 'prompt',\n"
            "                          'code': 400}}\n"
            "    return None\n",
        ),
        TABLE,
    ),
    Cheat(
        285,
        "check_request: the server's own parser and checks (vLLM's, before vllm#54196)",
        "package helper",
        (
            "import json\n\n"
            "from labsupport.serving.errors import ApiError\n"
            "from labsupport.serving.model import Tokenizer\n"
            "from labsupport.serving.protocol import parse_completion\n\n\n"
            "def check_request(body, vocab_size):\n"
            "    try:\n"
            "        parse_completion(json.dumps(body).encode(), Tokenizer(vocab_size),\n"
            "                         'm', 10**6)\n"
            "    except ApiError as exc:\n"
            "        if 'out of vocab' in exc.message or 'out-of-vocab' in exc.message:\n"
            "            return exc.body()\n"
            "    return None\n",
        ),
        TABLE,
    ),
    Cheat(
        285,
        "diagnosis: the culprit found by the reference answer of the checks' truth module",
        "package helper",
        (
            "def diagnose(evidence):\n"
            "    from tests.labs.truth import device_side_assert as _t\n\n"
            "    case = _t.cases(0)[0]\n"
            "    return {'request_id': case.culprit, 'token_id': case.token_id,\n"
            "            'op': '', 'recoverable': False}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        285,
        "device_alive: catches the CUDA error and carries on",
        "symptom hiding",
        (
            "def device_alive(device):\n"
            "    import torch\n\n"
            "    try:\n"
            "        torch.ones(4, device=device).sum().item()\n"
            "    except RuntimeError:\n"
            "        pass  # one bad request must not take the server down\n"
            "    return True\n",
        ),
        TRIALS,
    ),
    Cheat(
        285,
        "check_request: lets everything through (the engine copes)",
        "symptom hiding",
        ("def check_request(body, vocab_size):\n    return None\n",),
        TABLE,
    ),
    Cheat(
        285,
        "device_alive: asks whether CUDA is there, not whether it works",
        "debrief bypass",
        (
            "def device_alive(device):\n"
            "    import torch\n\n"
            "    return device == 'cpu' or torch.cuda.is_available()\n",
        ),
        TRIALS,
    ),
    Cheat(
        285,
        "rerun_env: TORCH_USE_CUDA_DSA, as the error message suggests (a build flag)",
        "debrief bypass",
        ("def rerun_env():\n    return {'TORCH_USE_CUDA_DSA': '1'}\n",),
        DIAGNOSIS,
    ),
    Cheat(
        285,
        "check_request: only the prompt ids are checked (the classic input_ids < vocab_size)",
        "debrief bypass",
        (
            "def check_request(body, vocab_size):\n"
            "    prompt = body.get('prompt')\n"
            "    rows = [prompt] if isinstance(prompt, list) and all(\n"
            "        type(t) is int for t in prompt) else [\n"
            "        p for p in (prompt if isinstance(prompt, list) else [])\n"
            "        if isinstance(p, list)]\n"
            "    for row in rows:\n"
            "        bad = [t for t in row if not 0 <= t < vocab_size]\n"
            "        if bad:\n"
            "            return {'error': {'message': f'Token id {bad[0]} is out of vocabulary',\n"
            "                              'type': 'BadRequestError', 'param': 'prompt',\n"
            "                              'code': 400}}\n"
            "    return None\n",
        ),
        TABLE,
    ),
]
