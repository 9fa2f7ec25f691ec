"""The SDK's surface: `from connectors import *` gives exactly `connectors.__all__`, every name
in it is a real object, and nothing else public hangs off the package but its modules."""

from __future__ import annotations

from types import ModuleType

import connectors


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from connectors import *", namespace)
    namespace.pop("__builtins__", None)
    assert sorted(namespace) == sorted(connectors.__all__)
    assert len(set(connectors.__all__)) == len(connectors.__all__)


def test_every_exported_name_resolves_to_a_class_or_function_of_ours() -> None:
    for name in connectors.__all__:
        value = getattr(connectors, name)
        assert callable(value), name
        assert value.__module__.split(".")[0] in {"connectors", "schemas"}, (name, value.__module__)
        assert value.__name__ == name, f"{name} is exported under another name ({value.__name__})"


def test_nothing_public_outside_all_but_modules() -> None:
    extra = [
        name
        for name, value in vars(connectors).items()
        if not name.startswith("_") and name not in connectors.__all__ and not isinstance(value, ModuleType)
    ]
    assert not extra, f"public in `connectors` but not in __all__: {extra}"
