"""compframe's Hydra plugin, found by Hydra through the entry-point group ``hydra.plugins``.

Whenever Hydra composes a config (the ``compframe`` command, ``python -m compframe.run``, or
``hydra.compose`` in a test or notebook), it asks search-path plugins for their folders first. This
one stores every registered plugin's schema in the ConfigStore (``schema/<kind>/<id>``, which the
YAML files extend) and appends the config packages that installed plugin packages declare in the
entry-point group ``compframe.configs`` (searched as ``pkg://<package>``). Library users who never
compose a config never import Hydra.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class CompframeSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from compframe.registry import config_packages, store_schemas

        store_schemas()
        for name, package in config_packages():
            search_path.append(provider=f"compframe.configs:{name}", path=f"pkg://{package}")
