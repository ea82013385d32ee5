"""The training backbone behind ``python -m parallel_decoding.train``: optimizers and schedules, callbacks, FSDP
wrapping and the pipeline that ties them to a method and its data. Methods (``parallel_decoding.methods``) plug in
through ``TrainableMethod``; the data module and its resumable sampling are in the methods layer
(``methods/datamodule.py``), because methods build on them."""
