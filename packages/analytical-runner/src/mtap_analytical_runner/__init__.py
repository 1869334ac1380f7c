"""mtap analytical runner: the roofline baseline ("Analytical" in the experiment plan)."""

__version__ = "2.1.0"
