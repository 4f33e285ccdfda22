"""Unit tests of labsupport.portable: notebook functions sent to fresh processes."""

import gc
import math
import pickle

import pytest

from labsupport import isolate, portable

LIMIT = 3


def _notebook_style_hook():
    gc.set_threshold(LIMIT * 1000, 10, 10)
    return math.floor(gc.get_threshold()[0] / 1000)


def test_portable_rebuilds_a_function_from_its_code_modules_and_constants():
    fn = portable.portable(_notebook_style_hook)
    saved = gc.get_threshold()
    try:
        rebuilt = pickle.loads(pickle.dumps(fn)).load()
        assert rebuilt() == LIMIT and gc.get_threshold()[0] == 3000
    finally:
        gc.set_threshold(*saved)
    with pytest.raises(ValueError, match="enclosing function"):
        x = 1
        portable.portable(lambda: x)


def test_hooks_are_sent_by_name_by_code_or_as_they_are():
    assert portable.sendable(gc.freeze) == "gc:freeze"
    assert portable.sendable("gc:freeze") == "gc:freeze"
    local = portable.sendable(lambda: None)
    assert isinstance(local, portable.PortableFunction)
    assert portable.sendable([gc.collect, "gc:disable"]) == ("gc:collect", "gc:disable")


def test_a_portable_function_runs_in_a_fresh_interpreter():
    payload = pickle.dumps(portable.portable(_notebook_style_hook))
    code = f"import pickle; print(pickle.loads({payload!r}).load()())"
    r = isolate.run_python(code, timeout_s=60)
    assert r.ok, r.error
    assert r.stdout.strip() == str(LIMIT)


def test_a_function_that_needs_another_notebook_function_fails_clearly_in_the_child():
    notebook = {"__name__": "__main__"}  # what a notebook cell defines lives in __main__
    exec("def helper():\n    return 1\n\ndef uses():\n    return helper()\n", notebook)
    ref = portable.portable(notebook["uses"])
    assert portable.sendable(notebook["uses"]) == ref
    with pytest.raises(NameError, match="helper"):
        ref.load()()


def test_attribute_names_are_not_taken_for_globals():
    import os
    from pathlib import Path

    namespace = {"os": os, "path": Path("/tmp")}
    exec("def joined(a):\n    return os.path.join(a, 'x')\n", namespace)
    ref = portable.portable(namespace["joined"])
    assert ref.load()("/a") == "/a/x"
