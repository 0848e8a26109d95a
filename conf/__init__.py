"""compframe's Hydra configs, installed as the package ``compframe.conf`` (``pkg://compframe.conf``).

The folder is the top-level ``conf/`` of the repository; packaging maps it to ``compframe.conf``
(``setup.py``), so a wheel and an editable install both carry it.
"""
