"""mtap's VIDUR runner: drives the real simulator (vidur from PyPI) offline on the W5 serving matrix."""

__version__ = "1.3.0"
