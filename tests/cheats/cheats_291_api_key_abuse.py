"""Wrong submissions for lab 291 (one API key slows everyone down) that must fail a check.

Each is the solution with one exercise replaced. The Lua cheats are the solution's scripts
with one decision changed, so only the cheated part is wrong.
"""

import re
from pathlib import Path

from tests.cheats.corpus import Cheat

DIAGNOSIS = ("test_find_heavy_key_on_written_logs_and_on_this_run",)
ADMIT = "test_admit_decides_every_limit_and_charges_only_what_it_admits"
SETTLE = "test_settle_refunds_unused_tokens_and_frees_the_streams"
BURSTS = "test_no_over_admission_under_concurrent_clients"
VICTIMS = "test_victims_keep_their_latency_and_everyone_is_served"

_SOURCE = (Path(__file__).parents[2] / "solutions" / "291_api_key_abuse.py").read_text()


def _lua(name: str) -> str:
    found = re.search(rf'def {name}\(\) -> str:.*?return """\\\n(.*?)"""', _SOURCE, re.S)
    assert found, f"the solution's {name} is not where the cheats expect it"
    return found.group(1)


def _script(name: str, old: str, new: str) -> tuple[str, ...]:
    text = _lua(name)
    assert old in text, f"{name}: {old!r} is not in the solution's script"
    return (f"def {name}():\n    return {text.replace(old, new)!r}\n",)


CHEATS = [
    Cheat(
        291,
        "heavy key: the default variant's key and numbers, hard-coded",
        "hard-coded",
        (
            "def find_heavy_key(log):\n"
            "    return {'key': 'sk-tyrell-6bb5', 'how': 'max_tokens', 'token_share': 0.5,\n"
            "            'peak_streams': 6}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        291,
        "admit: streams in flight capped at the default plan's 2, whatever the plan says",
        "hard-coded",
        _script("admit_script", "if streams >= max_streams then", "if streams >= 2 then"),
        (ADMIT, SETTLE),
    ),
    Cheat(
        291,
        "heavy key: read from the package's variant instead of the log",
        "package helper",
        (
            "def find_heavy_key(log):\n"
            "    from labsupport.scenarios import api_key_abuse as sc\n\n"
            "    v = sc.variant(0)\n"
            "    return {'key': v.heavy, 'how': v.how, 'token_share': 0.5,\n"
            "            'peak_streams': v.heavy_traffic.sessions}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        291,
        "heavy key: the reference answer imported from the checks' truth module",
        "package helper",
        (
            "def find_heavy_key(log):\n"
            "    from tests.labs.truth import api_key_abuse as t\n\n"
            "    return t.diagnose(log)\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        291,
        "heavy key: the key with the most requests",
        "debrief bypass",
        (
            "def find_heavy_key(log):\n"
            "    counts = {}\n"
            "    for r in log:\n"
            "        counts[r['key']] = counts.get(r['key'], 0) + 1\n"
            "    key = max(counts, key=counts.get)\n"
            "    return {'key': key, 'how': 'streams', 'token_share': 0.0, 'peak_streams': 1}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        291,
        "heavy key: the key that asks for the largest max_tokens",
        "debrief bypass",
        (
            "def find_heavy_key(log):\n"
            "    key = max(log, key=lambda r: r['max_tokens'])['key']\n"
            "    return {'key': key, 'how': 'max_tokens', 'token_share': 0.0, 'peak_streams': 1}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        291,
        "admit: lock out any request that may cost more than 100 tokens",
        "symptom hiding",
        _script(
            "admit_script",
            "if reason then",
            'if cost > 100 then\n  wait, reason = 60000, "too large"\nend\nif reason then',
        ),
        (ADMIT,),
    ),
    Cheat(
        291,
        "admit: everyone's requests per minute cut tenfold, nothing else",
        "debrief bypass",
        (
            "def admit_script():\n"
            "    return '''\n"
            "local now, per_minute = tonumber(ARGV[1]), tonumber(ARGV[2]) / 10\n"
            "local saved = redis.call('HMGET', KEYS[1], 'level', 'at')\n"
            "local level = tonumber(saved[1]) or per_minute\n"
            "local at = tonumber(saved[2]) or now\n"
            "level = math.min(per_minute, level + math.max(0, now - at) * per_minute / 60000)\n"
            "if level < 1 then return {0, math.ceil((1 - level) * 60000 / per_minute), 'rpm'} end\n"
            "redis.call('HSET', KEYS[1], 'level', level - 1, 'at', now)\n"
            "return {1, 0, 'ok'}\n"
            "'''\n",
        ),
        (ADMIT,),
    ),
    Cheat(
        291,
        "admit charges the streams even when it refuses",
        "symptom hiding",
        _script(
            "admit_script",
            "if reason then\n  return",
            'if reason then\n  redis.call("INCR", KEYS[3])\n  return',
        ),
        (ADMIT, SETTLE),
    ),
    Cheat(
        291,
        "settle: no refund, the whole max_tokens stays charged",
        "debrief bypass",
        _script("settle_script", "tonumber(ARGV[6]) - tonumber(ARGV[7])", "0"),
        (SETTLE,),
    ),
    Cheat(
        291,
        "settle: counters decremented even at zero",
        "symptom hiding",
        _script(
            "settle_script",
            'if tonumber(redis.call("GET", KEYS[i]) or "0") > 0 then\n'
            '    redis.call("DECR", KEYS[i])\n  end',
            'redis.call("DECR", KEYS[i])',
        ),
        (SETTLE,),
    ),
]
