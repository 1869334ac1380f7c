"""aggregate: every tool-run document under data/evaluation/ in one table."""

__version__ = "2.0.0"
