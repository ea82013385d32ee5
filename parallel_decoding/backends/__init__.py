"""Decoding backends a strategy talks to. ``hf`` runs transformers models in-process."""

from parallel_decoding.backends.hf import HFBackend

__all__ = ["HFBackend"]
