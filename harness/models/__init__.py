"""Models: the bi-encoder being trained, the names it resolves, and the teacher that scores lists."""

from harness.models.biencoder import BiEncoder, EncoderSettings
from harness.models.registry import load_model

__all__ = ["BiEncoder", "EncoderSettings", "load_model"]
