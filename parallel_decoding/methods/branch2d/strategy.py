"""2D-RoPE branching: the questions of a group are branches side by side after the shared context (the trunk),
all decoded together, one forward per step, the trunk's KV shared (``methods/branch2d``).

``strategies=[branch2d] checkpoints.branch2d=<dir>`` decodes with a model trained by ``method=branch2d`` (its rope
channels from the saved config, its layout from ``method.yaml``). Without a checkpoint it decodes with the run's
own model patched with the channels and layout of this strategy's config: the untrained patched baseline. The
patch is applied in place; that leaves every other strategy of the run unchanged, because the patched model given
ordinary 1D ``position_ids`` is bit-identical to the unpatched one (tested).

With ``trunk=context_first_question`` (the layout's ``trunk``; a checkpoint's ``method.yaml`` decides) a group is
answered in two stages: stage 1 answers Q1 alone by ordinary causal decoding (``backend.generate`` on Q1's
single-question prompt: the patched model under plain 1D positions, i.e. exactly the ``independent`` strategy's
answer); stage 2 builds the trunk from Q1's prompt, the *generated* A1 and the start of the next user turn
(``methods/branch2d/data.first_question_layout``, as training lays it out) and decodes Q2..Qn as branches. Stage 2
prefills the whole trunk again, context included (HF ``generate`` keeps no reusable cache); both stages are counted
in the cost.

Besides answers it records the branch-collapse diagnostic per group (``extra.collapse_sum`` over
``extra.collapse_groups`` groups with >= 2 answered branches, stage 2's with the first-question trunk: mean pairwise
cosine of the branches' final hidden states), computed after the timed decode so it does not count in the
strategy's cost.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.decoding import split_shared_prefix
from parallel_decoding.methods.base import load_trained, read_method_record
from parallel_decoding.methods.branch2d.data import LayoutSettings, first_question_layout
from parallel_decoding.methods.branch2d.decoder import branch_collapse, branch_generate
from parallel_decoding.methods.branch2d.rope import apply_interleaved_2d_rope, patched_channels
from parallel_decoding.models.bundle import check_saved_model_dir
from parallel_decoding.prompting.prompts import single_question_messages
from parallel_decoding.strategies.base import GroupOutcome, QuestionPrediction, Strategy, prediction_from_output


class Branch2DStrategy(Strategy):
    requires_model_internals = True  # 2D positions, custom 4D masks and a shared KV cache: in-process HF only

    def __init__(self, name: str, checkpoint: str | None = None, mask: str = "isolated", align: str = "left",
                 x_stride: int = 32, rope: dict[str, Any] | None = None, collapse_diagnostic: bool = True,
                 trunk: str = "context") -> None:
        super().__init__(name)
        self.checkpoint = check_saved_model_dir(checkpoint, "checkpoints.branch2d", "; pass <branch2d train run dir>/model") \
            if checkpoint else None
        self.layout_settings = LayoutSettings(mask=mask, align=align, x_stride=x_stride, trunk=trunk)
        self.rope = dict(rope or {})
        self.collapse_diagnostic = collapse_diagnostic
        self._backend: HFBackend | None = None
        self._last: tuple[list[int], list[list[int]], list[list[int]]] | None = None

    def backend_for(self, base: HFBackend) -> HFBackend:
        if self._backend is not None:
            return self._backend
        if self.checkpoint is not None:
            bundle = load_trained(self.checkpoint, **base.bundle.load_options())
            if patched_channels(bundle.model) is None:
                raise ConfigError(f"checkpoints.branch2d={self.checkpoint} has no Interleaved2DRoPE patch in its "
                                  f"config: it was not trained with method=branch2d")
            layout = (read_method_record(self.checkpoint).get("config") or {}).get("layout")
            if layout:  # decode with the layout the model was trained on
                self.layout_settings = replace(self.layout_settings, **layout)
            self._backend = HFBackend(bundle, base.settings)
            self._backend.warmup()
        else:
            if patched_channels(base.model) is None:
                apply_interleaved_2d_rope(base.model, self.rope.get("x_channels"), self.rope.get("y_channels"))
            self._backend = base
        return self._backend

    def run(self, group: QuestionGroup, backend: HFBackend) -> GroupOutcome:
        backend = self.backend_for(backend)
        outcome = super().run(group, backend)
        if self.collapse_diagnostic and self._last is not None:
            prefix, prompts, outputs = self._last
            s = self.layout_settings
            value = branch_collapse(backend.model, prefix, prompts, outputs, s.mask, s.align, s.x_stride)
            if value is not None:
                outcome.extra.update(collapse_sum=value, collapse_groups=1)
        return outcome

    def answer_group(self, group: QuestionGroup, backend: HFBackend) -> list[QuestionPrediction]:
        self._last = None
        if self.layout_settings.trunk == "context_first_question":
            return self._answer_after_first(group, backend)
        prompts = [backend.chat_ids(single_question_messages(group, q)) for q in group.questions]
        prefix, branches = split_shared_prefix(prompts)
        return self._answer_branches(group.questions, prefix, branches, backend)

    def _answer_after_first(self, group: QuestionGroup, backend: HFBackend) -> list[QuestionPrediction]:
        """Stage 1: Q1 alone (causal, 1D positions); stage 2: Q2..Qn as branches after context + Q1 + A1."""
        first = group.questions[0]
        [answer] = backend.generate([backend.chat_ids(single_question_messages(group, first))])
        predictions = [prediction_from_output(first.id, backend.decode(answer))]
        if len(group.questions) == 1:
            return predictions
        # the trunk holds A1 closed by EOS, as in training (a budget-cut answer or another stop token included)
        closed = (answer[:-1] if answer and answer[-1] in backend.stop_token_ids else answer) + \
            [backend.tokenizer.eos_token_id]
        trunk, branches, _ = first_question_layout(backend.tokenizer, group, closed, backend.bundle.enable_thinking)
        return predictions + self._answer_branches(group.questions[1:], trunk, branches, backend)

    def _answer_branches(self, questions: Sequence[Question], prefix: list[int], branches: list[list[int]],
                         backend: HFBackend) -> list[QuestionPrediction]:
        settings, s = backend.settings, self.layout_settings
        result = branch_generate(
            backend.model, prefix, branches, mask=s.mask, align=s.align, x_stride=s.x_stride,
            tokenizer=backend.tokenizer, pad_token_id=backend.tokenizer.pad_token_id,
            max_new_tokens=settings.max_new_tokens, stop_token_ids=backend.stop_token_ids,
            sampling=settings.sampling(),
        )
        backend.record([prefix + b for b in branches], result.sequences, calls=1,
                       computed_prompt_tokens=result.stats.prefill_tokens)
        self._last = (prefix, branches, result.sequences)
        return [prediction_from_output(q.id, backend.decode(ids)) for q, ids in zip(questions, result.sequences)]
