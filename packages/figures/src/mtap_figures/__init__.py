"""mtap-figures: the MTAP evaluation's figures."""

__version__ = "1.0.0"
