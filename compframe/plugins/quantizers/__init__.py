"""Quantizers (the lossy step): one module per family."""

from . import uniform  # noqa: F401
from . import binary  # noqa: F401
from . import blocks  # noqa: F401
from . import fixed  # noqa: F401
from . import floats  # noqa: F401
from . import lowrank  # noqa: F401
from . import prune  # noqa: F401
from . import vq  # noqa: F401
