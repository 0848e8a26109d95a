"""Data sources (``DataSource``): each yields ``Field``s, arrays with their coordinates."""

from . import emb_dump  # noqa: F401
from . import npy  # noqa: F401
from . import synthetic  # noqa: F401
from . import image  # noqa: F401
from . import model  # noqa: F401
