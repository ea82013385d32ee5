"""Strategies on cross-batch checkpoints: ``collab_hidden``, ``lora_lmhead``, ``lora_crossbatch``.

Each question gets the ``batch`` strategy's prompt; a group's questions are decoded together as the rows of one
batch by the mixing generator (``methods/crossbatch/generator.py``), with the checkpoint's LM head, LoRA
weights (merged) and mixer:

    python -m parallel_decoding.evaluate 'strategies=[batch,collab_hidden]' checkpoints.collab_hidden=<dir>
    python -m parallel_decoding.evaluate auto_checkpoints=true \
        'strategies=[batch,finetuned,collab_hidden,lora_lmhead,lora_crossbatch]'

With ``auto_checkpoints=true`` a strategy whose ``checkpoints.<strategy>`` is left null answers with the
checkpoint ``train`` published for the variant its YAML's ``published: ${published:crossbatch,<variant>}`` names
(``Strategy.checkpoint_or_published``; ``finetuned`` answers with the ``baseline`` variant's head the same way);
a strategy whose checkpoint is not there is skipped with a notice in ``results.json`` (``skipped.strategies``).

Without LoRA the strategy shares the run's base model (the checkpoint's head is a separate module; the base model
is not changed); with LoRA it loads its own copy of the base model, as ``finetuned`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.methods.base import read_method_record
from parallel_decoding.methods.crossbatch.checkpoint import (
    check_base,
    load_backbone,
    load_head,
    load_mixer,
    read_checkpoint_config,
)
from parallel_decoding.methods.crossbatch.generator import crossbatch_generate
from parallel_decoding.methods.crossbatch.model import CrossBatchModel
from parallel_decoding.models.bundle import ModelBundle, check_saved_model_dir
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.strategies.base import QuestionPrediction, Strategy, prediction_from_output


class CrossBatchStrategy(Strategy):
    requires_model_internals = True  # hidden states of every row at every step: in-process backends only

    def __init__(self, name: str, checkpoint: str | None = None, variants: Sequence[str] | None = None,
                 base_model: str | None = None, max_rows: int | None = None, use_published: bool = False,
                 published: Mapping[str, Any] | None = None) -> None:
        super().__init__(name)
        checkpoint = self.checkpoint_or_published(checkpoint, use_published, published)
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint else None
        # the checkpoint variants it answers with: the one it looks up under auto_checkpoints, unless listed
        self.variants = tuple(variants or ([published["variant"]] if published else ["crossbatch"]))
        self.base_model = base_model  # the run's model name: the checkpoint must have been trained on it
        if max_rows is not None and max_rows < 1:
            raise ConfigError(f"max_rows must be >= 1 or null, got {max_rows}")
        self.max_rows = max_rows
        self._model = None  # CrossBatchModel, once loaded (or bound)
        self._backend: HFBackend | None = None
        self._bound = False

    @classmethod
    def bound(cls, name: str, model: Any) -> "CrossBatchStrategy":
        """A strategy answering with an in-memory ``CrossBatchModel`` (validation during training)."""
        strategy = cls(name)
        strategy._model, strategy._bound = model, True
        return strategy

    def check(self) -> None:
        """Fail before any loading when there is no usable checkpoint."""
        if self._bound:
            return

        if self.checkpoint is None:
            raise ConfigError(f"strategy {self.name} needs checkpoints.{self.name}=<cross-batch checkpoint dir> "
                              f"or auto_checkpoints=true")
        check_saved_model_dir(self.checkpoint, f"checkpoints.{self.name}")
        config = read_checkpoint_config(self.checkpoint)
        if config["variant"] not in self.variants:
            raise ConfigError(f"strategy {self.name} answers with a {' / '.join(self.variants)} checkpoint; "
                              f"{self.checkpoint} holds variant {config['variant']}")
        if self.base_model is not None and config["base_model"] != self.base_model:
            raise ConfigError(f"{self.checkpoint} was trained on {config['base_model']}, this run's model is "
                              f"{self.base_model}")

    # -- loading ------------------------------------------------------------------------------------------------
    def prepare(self, base: HFBackend) -> HFBackend:
        """Load the checkpoint once; the backend that answers (and measures) for this strategy."""
        if self._bound:
            return base
        if self._backend is not None:
            return self._backend

        self.check()
        config = read_checkpoint_config(self.checkpoint)
        model = base.bundle.model
        mixer = load_mixer(self.checkpoint, config, device=base.bundle.device)
        if config.get("lora"):  # its own base model copy with the adapter merged (and the trained head)
            bundle = load_backbone(self.checkpoint, read_method_record(self.checkpoint), **base.bundle.load_options())
            self._model = CrossBatchModel(bundle.model, mixer)
            self._backend = HFBackend(bundle, base.settings)
            self._backend.warmup()
        else:  # the run's base model, untouched; the trained head beside it
            check_base(config, model, self.base_model)
            head = load_head(self.checkpoint, model.get_output_embeddings()) if config.get("lm_head") else None
            self._model = CrossBatchModel(model, mixer, head=head)
            bundle = ModelBundle(model=model, tokenizer=base.tokenizer, name=f"{base.bundle.name}+{self.name}",
                                 enable_thinking=base.bundle.enable_thinking)
            self._backend = HFBackend(bundle, base.settings)
        return self._backend

    # -- answering ----------------------------------------------------------------------------------------------
    def run(self, group: QuestionGroup, backend: HFBackend):
        return super().run(group, self.prepare(backend))

    def answer_group(self, group: QuestionGroup, backend: HFBackend) -> list[QuestionPrediction]:
        prompts = [backend.chat_ids(single_question_messages(group, q)) for q in group.questions]
        size = self.max_rows or len(prompts)
        settings = backend.settings
        sampling = settings.sampling()
        outputs: list[list[int]] = []
        for start in range(0, len(prompts), size):  # one batch per chunk: rows mix within it
            chunk = prompts[start:start + size]
            result = crossbatch_generate(self._model, chunk, max_new_tokens=settings.max_new_tokens,
                                         stop_token_ids=backend.stop_token_ids,
                                         pad_token_id=backend.tokenizer.pad_token_id, sampling=sampling)
            outputs.extend(result.sequences)
        backend.record(prompts, outputs, calls=-(-len(prompts) // size))
        return [prediction_from_output(q.id, backend.decode(o)) for q, o in zip(group.questions, outputs)]
