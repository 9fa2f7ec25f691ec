"""The error tree drawn in schemas/errors.py names every subclass the project defines (a
subtree drawn in its own module, as connectors.letters.errors does, counts once its root is
named there)."""

from __future__ import annotations

import importlib
import pkgutil

import connectors
import hub
import schemas
from schemas import errors
from schemas.errors import InbeeldError


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_the_docstring_names_every_error_class() -> None:
    for package in (hub, connectors, schemas):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in module.name and not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    doc = errors.__doc__ or ""
    ours = {
        c
        for c in _all_subclasses(InbeeldError)
        if c.__module__.split(".")[0] in {"hub", "connectors", "schemas"}
    }

    def drawn(c: type) -> bool:
        own = importlib.import_module(c.__module__).__doc__ or ""
        return c.__name__ in doc or (c.__module__ != errors.__name__ and c.__name__ in own)

    missing = sorted(f"{c.__module__}.{c.__name__}" for c in ours if not drawn(c))
    assert not missing, f"not in the tree drawn in schemas/errors.py: {missing}"
