"""mtap runner for LLMCompass (ISCA'24, PrincetonUniversity/LLMCompass): Llama-2-7B prefill/decode latency."""

__version__ = "1.0.0"
