"""parallel_decoding: answer many questions that share context faster than one-by-one decoding."""

__version__ = "0.1.0"
