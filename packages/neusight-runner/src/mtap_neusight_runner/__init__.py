"""mtap runner for NeuSight (ASPLOS'25, sitar-lab/NeuSight): artifact re-scoring and live prediction."""

__version__ = "2.1.0"
