"""The ``batch`` strategy on fine-tuned weights: ``strategies=[finetuned] checkpoints.finetuned=<dir>``.

``<dir>`` is what ``python -m parallel_decoding.train`` exported (``<run dir>/model``), or any HF directory. The
strategy loads it once, on the device and dtype of the run's model, and answers through its own backend, so its
cost is measured like every other strategy's while the run's base model stays available to the others. Under
``auto_checkpoints=true`` it answers with the checkpoint its YAML's ``published`` names (the cross-batch
``baseline``: the LM head trained alone).
"""

from __future__ import annotations

from typing import Any, Mapping

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.methods.base import load_trained
from parallel_decoding.models.bundle import check_saved_model_dir
from parallel_decoding.strategies.base import GroupOutcome
from parallel_decoding.strategies.batch import BatchStrategy


class FinetunedStrategy(BatchStrategy):
    def __init__(self, name: str, checkpoint: str | None = None, batch_size: int = 8, use_published: bool = False,
                 published: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, batch_size=batch_size)
        checkpoint = self.checkpoint_or_published(checkpoint, use_published, published)
        self.checkpoint = check_saved_model_dir(checkpoint, "checkpoints.finetuned", "; pass <train run dir>/model") \
            if checkpoint else None
        self._backend: HFBackend | None = None

    def backend_for(self, base: HFBackend) -> HFBackend:
        if self.checkpoint is None:
            raise ConfigError("strategy finetuned needs checkpoints.finetuned=<dir saved by "
                              "python -m parallel_decoding.train, i.e. its run dir/model>")
        if self._backend is None:
            bundle = load_trained(self.checkpoint, **base.bundle.load_options())
            self._backend = HFBackend(bundle, base.settings)
            self._backend.warmup()
        return self._backend

    def run(self, group: QuestionGroup, backend: HFBackend) -> GroupOutcome:
        return super().run(group, self.backend_for(backend))
