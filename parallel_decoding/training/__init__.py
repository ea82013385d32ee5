"""The training backbone behind ``python -m parallel_decoding.train``: data module and resumable sampling,
optimizers and schedules, callbacks, loggers (W&B offline, secrets masked), the Hydra-side job plumbing and the
pipeline that ties them together. Methods (``parallel_decoding.methods``) plug in through ``TrainableMethod``."""
