"""compframe's built-in plugins, one package per kind; importing this registers them all.

Every module under this package is imported (``pkgutil.walk_packages``), so a new plugin is one
module, one YAML file and one docs entry: no import line to add.
"""

import importlib
import pkgutil


def _import_all() -> None:
    for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(info.name)


_import_all()
