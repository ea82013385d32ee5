"""Trained methods. Each is a folder with a ``TrainableMethod`` subclass plus ``conf/method/<name>.yaml``
(see ``methods/base.py`` for what a method declares); ``load_trained`` loads any exported model."""

from parallel_decoding.methods.base import METHOD_FILE, TrainableMethod, load_trained, read_method_record

__all__ = ["METHOD_FILE", "TrainableMethod", "load_trained", "read_method_record"]
