"""The ``llada`` strategy: each question's ``batch`` prompt, answered by the masked-diffusion sampler.

    python -m parallel_decoding.evaluate 'strategies=[llada]' checkpoints.llada=<train run dir>/model \
        model=tiny_qwen3 dataset=synthetic

``checkpoints.llada`` is a diffusion directory saved by ``train method=llada`` (or by
``python -m parallel_decoding.methods.llada.convert``). It is loaded once, on the run model's device and dtype,
with its own backend, so its forward passes are counted by the backend's hook like every other strategy's.
Without a checkpoint the run's own model is used if it is a diffusion model (validation inside training).

Prompts and answer extraction are the ``batch`` strategy's; the sampler settings are ``strategy.llada.sampler``
(``sampler.py``). Each group's ``extra`` holds the sampler's own counts, summed over groups by the recorder:
``sampler_forward_passes`` (model calls), ``sampler_steps``, ``decoded_tokens`` (answer positions the model
committed, all rows, whether or not they end up after the stop token) and ``row_forward_passes`` (calls x rows
decoded together), so Fast-dLLM's tokens per forward pass = decoded_tokens / row_forward_passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.methods.base import load_trained
from parallel_decoding.methods.llada.modeling import is_diffusion_model
from parallel_decoding.methods.llada.module import load_diffusion_bundle
from parallel_decoding.methods.llada.sampler import SamplerSettings, diffusion_generate
from parallel_decoding.models.bundle import ModelBundle, check_saved_model_dir
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.strategies.base import GroupOutcome, QuestionPrediction, Strategy, prediction_from_output


def load_llada_bundle(checkpoint: str | Path, dtype: str = "float32", device: str = "cpu",
                      attn_implementation: str | None = "sdpa") -> ModelBundle:
    """A diffusion directory (``train method=llada``'s ``model/`` or ``methods.llada.convert``'s output) with its
    tokenizer; also what the lm-eval model ``parallel_decoding`` loads for ``decoder=llada``."""
    checkpoint = check_saved_model_dir(checkpoint, "checkpoints.llada", "; pass <train run dir>/model")
    kwargs = dict(dtype=dtype, device=device, attn_implementation=attn_implementation)
    if (checkpoint / "method.yaml").is_file():
        bundle = load_trained(checkpoint, **kwargs)
    else:
        bundle = load_diffusion_bundle(checkpoint, **kwargs)
    if not is_diffusion_model(bundle.model):
        raise ConfigError(f"{checkpoint} is not a diffusion model")
    return bundle


class LLaDAStrategy(Strategy):
    requires_model_internals = True  # runs its own sampler on the model, not backend.generate

    def __init__(self, name: str, checkpoint: str | None = None, batch_size: int = 8,
                 sampler: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.settings = SamplerSettings(**(sampler or {}))
        self.checkpoint = check_saved_model_dir(checkpoint, "checkpoints.llada", "; pass <train run dir>/model") \
            if checkpoint else None
        self._backend: HFBackend | None = None
        self._counts: dict[str, float] = {}

    def backend_for(self, base: HFBackend) -> HFBackend:
        if self.checkpoint is None:
            if not is_diffusion_model(getattr(base, "model", None)):
                raise ConfigError("strategy llada needs checkpoints.llada=<a diffusion model dir: the model/ of a "
                                  "train method=llada run, or the output of python -m "
                                  "parallel_decoding.methods.llada.convert>")
            return base
        if self._backend is None:
            bundle = load_llada_bundle(self.checkpoint, **base.bundle.load_options())
            self._backend = HFBackend(bundle, base.settings)
            self._warmup(self._backend)
        return self._backend

    def _warmup(self, backend: HFBackend) -> None:
        """One tiny uncounted sampler call, so lazy initialisation never lands in the first group's latency."""
        block = self.settings.block_length
        diffusion_generate(backend.model, [backend.chat_ids([{"role": "user", "content": "Hi"}])],
                           SamplerSettings(gen_length=block, steps=1, block_length=block), pad_token_id=0)

    def run(self, group: QuestionGroup, backend: HFBackend) -> GroupOutcome:
        self._counts = {"sampler_forward_passes": 0, "sampler_steps": 0, "decoded_tokens": 0,
                        "row_forward_passes": 0}
        outcome = super().run(group, self.backend_for(backend))
        outcome.extra.update(self._counts)
        return outcome

    def answer_group(self, group: QuestionGroup, backend: HFBackend) -> list[QuestionPrediction]:
        prompts = [backend.chat_ids(single_question_messages(group, q)) for q in group.questions]
        pad = backend.tokenizer.pad_token_id if backend.tokenizer.pad_token_id is not None \
            else backend.tokenizer.eos_token_id
        outputs: list[list[int]] = []
        calls = 0
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            result = diffusion_generate(backend.model, chunk, self.settings, pad_token_id=pad,
                                        stop_token_ids=backend.stop_token_ids)
            outputs.extend(backend.trim_at_stop(row) for row in result.tokens.tolist())
            self._counts["sampler_forward_passes"] += result.forward_passes
            self._counts["sampler_steps"] += result.steps
            self._counts["decoded_tokens"] += result.decoded
            self._counts["row_forward_passes"] += result.forward_passes * len(chunk)
            calls += 1
        backend.record(prompts, outputs, calls=calls)
        return [prediction_from_output(q.id, backend.decode(o)) for q, o in zip(group.questions, outputs)]
