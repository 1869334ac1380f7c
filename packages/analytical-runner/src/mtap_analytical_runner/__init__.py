"""mtap analytical runner: the roofline baseline ("Analytical" in the experiment plan)."""

__version__ = "2.0.0"
