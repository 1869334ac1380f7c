"""mtap-figures: the MTAP evaluation's figures."""

__version__ = "2.0.0"
