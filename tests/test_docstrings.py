"""Every labsupport module's docstring examples run: they are the first docs people read."""

import doctest
import importlib
import pkgutil

import pytest

import labsupport

MODULES = sorted(m.name for m in pkgutil.walk_packages(labsupport.__path__, prefix="labsupport."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{name}: {result.failed} docstring example(s) failed"


def test_every_module_opens_with_a_docstring():
    missing = [n for n in MODULES if not (importlib.import_module(n).__doc__ or "").strip()]
    assert not missing, f"modules without a docstring: {missing}"
