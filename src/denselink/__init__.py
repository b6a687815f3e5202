"""denselink: dense learned embeddings for transformer cell linking."""

__version__ = "0.1.0"
