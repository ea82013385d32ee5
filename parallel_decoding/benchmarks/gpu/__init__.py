"""The one-shot GPU check (``python -m parallel_decoding.benchmarks.gpu_check``): correctness, training and speed
stages, each a module here, run in its own process with its own time budget (``launchers/gpu_check.sh``)."""
