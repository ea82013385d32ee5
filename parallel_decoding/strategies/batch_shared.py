"""Each question its own prompt, but the shared prefix (system + passage) is computed once and its KV cache
reused by every question's branch; all branches then advance with one forward per step (``decoding/``).

Prompts are the same single-question chat prompts ``independent`` sends; the prefix is their longest common
*token-id* prefix, so greedy answers are identical to ``independent``'s (fp32)."""

from __future__ import annotations

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.decoding import SharedPrefixDecoder, split_shared_prefix
from parallel_decoding.strategies.base import QuestionPrediction, Strategy, prediction_from_output
from parallel_decoding.prompting.prompts import single_question_messages


class BatchSharedStrategy(Strategy):
    """Decode a group's questions as branches of their shared prompt prefix with one engine call; subclasses
    change only the layout."""

    layout = "batch_shared"
    requires_model_internals = True  # custom 4D masks and a forked KV cache: the in-process HF model only

    def answer_group(self, group: QuestionGroup, backend: HFBackend) -> list[QuestionPrediction]:
        prompts = [backend.chat_ids(single_question_messages(group, q)) for q in group.questions]
        prefix, branches = split_shared_prefix(prompts)
        settings = backend.settings
        decoder = SharedPrefixDecoder(backend.model, pad_token_id=backend.tokenizer.pad_token_id,
                                      tokenizer=backend.tokenizer)
        result = decoder.generate(
            prefix, branches, layout=self.layout, max_new_tokens=settings.max_new_tokens,
            stop_token_ids=backend.stop_token_ids,
            sampling=settings.sampling(),
        )
        backend.record(prompts, result.sequences, calls=1, computed_prompt_tokens=result.stats.prefill_tokens)
        return [prediction_from_output(q.id, backend.decode(ids)) for q, ids in zip(group.questions, result.sequences)]
