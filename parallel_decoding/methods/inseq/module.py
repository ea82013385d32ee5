"""``method=inseq``: fine-tune a model on in-sequence layouts; predict with three-stage in-sequence decoding.

    python -m parallel_decoding.train method=inseq model=smollm2_135m dataset=squad \
        dataset.path=../shared/data/squad/dev-v1.1-half-a.json trainer.max_steps=300
    python -m parallel_decoding.train +experiment=synthetic_inseq         # the CPU learning check

Features: one training example per question group (its questions as branches after the shared passage, in ONE
sequence under the branch mask, ``training.py``); loss only on answer tokens, each the same branch's next token;
validation/test answer with ``inseq_qa`` (the same layout, decoded), so ``val/em`` is what ``evaluate`` reports;
``predict_step`` runs the three-stage outline -> parallel -> conclusion decoding (``decoder.py``) on prompts or
``TaskExample``s. Exports a plain HF directory (``evaluate model=hub_base model.path=<run dir>/model``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from parallel_decoding.methods.base import TrainableMethod
from parallel_decoding.methods.finetuning import in_sequence_loss
from parallel_decoding.methods.inseq.decoder import InSequenceDecoder, InSequenceSettings
from parallel_decoding.methods.inseq.prompts import with_format_instruction
from parallel_decoding.methods.inseq.tasks import ANSWER_LABELS, TaskExample, score_example
from parallel_decoding.methods.inseq.training import InSequenceCollator
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.prompting.chat import chat_prompt_ids


class InSequenceMethod(TrainableMethod):
    def __init__(self, bundle: ModelBundle, name: str = "inseq", optimizer: Any = None, scheduler: Any = None,
                 generation: dict[str, Any] | None = None, eval_strategy: str = "inseq_qa", max_length: int = 2048,
                 decoding: dict[str, Any] | None = None) -> None:
        self.max_length = max_length
        self.decoding = InSequenceSettings(**(decoding or {}))
        super().__init__(bundle, name=name, optimizer=optimizer, scheduler=scheduler, generation=generation,
                         eval_strategy=eval_strategy,
                         config={"max_length": max_length, "decoding": dict(decoding or {})})
        self._collator: InSequenceCollator | None = None

    def collator(self) -> InSequenceCollator:
        if self._collator is None:
            self._collator = InSequenceCollator(self.tokenizer, self.enable_thinking, self.max_length)
        return self._collator

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return in_sequence_loss(self.model, batch)

    def predict_step(self, batch: Sequence[TaskExample | str], batch_idx: int = 0) -> list[dict[str, Any]]:
        """Three-stage in-sequence decoding of each prompt (a ``TaskExample`` is also scored)."""
        bundle = ModelBundle(self.model, self.tokenizer, self.base_model_name, self.enable_thinking)
        decoder = InSequenceDecoder(self.model, self.tokenizer, bundle.stop_token_ids, self.generation.sampling(),
                                    self.decoding)
        outputs = []
        for item in batch:
            example = item if isinstance(item, TaskExample) else None
            text = example.prompt if example else str(item)
            language = example.language if example else "en"
            messages = [{"role": "user", "content": with_format_instruction(text, language)}]
            ids = chat_prompt_ids(self.tokenizer, messages, self.enable_thinking)
            result = decoder.parallel(ids)
            row = {"id": example.id if example else f"prompt-{batch_idx}-{len(outputs)}", **result.to_dict()}
            if example is not None:
                row["score"] = score_example(example, result.text, ANSWER_LABELS[example.task])
            outputs.append(row)
        return outputs
