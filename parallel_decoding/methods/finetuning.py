"""What the methods that fine-tune a causal LM on question groups share, so none of them imports another.

- the answer a model is taught to write (``answer_target``, ``answer_ids``: ``<answer>gold</answer>`` then EOS, the
  format ``extract_answer`` reads first) and the label that scores nothing (``IGNORE_INDEX``);
- ``ChatCollator``: the base of every collator that trains on the ``batch`` strategy's chat prompts (tokenizer,
  thinking switch, length cap, pad id), so the model learns the format it is evaluated in;
- ``in_sequence_loss``: the loss of methods whose examples are a layout (branches side by side or in one sequence,
  each slot with its own position, visibility and target).

The LightningModule they share (``FinetuningMethod``: full or LoRA fine-tuning, merged export) is in ``base.py``.
Nothing here imports ``base.py`` or a strategy, so a method's strategy can build its prompts from this module
without pulling in the training side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from parallel_decoding.data.schema import Question, QuestionGroup
from parallel_decoding.decoding import additive_mask
from parallel_decoding.methods.datamodule import MethodCollator
from parallel_decoding.models.compat import kept_logits, logits_to_keep_arg
from parallel_decoding.prompting.chat import chat_prompt_ids
from parallel_decoding.prompting.prompts import single_question_messages

IGNORE_INDEX = -100


def answer_target(answer: str) -> str:
    """The text the model is taught to write, in the format ``extract_answer`` reads first."""
    return f"<answer>{answer.strip()}</answer>"


def answer_ids(tokenizer: PreTrainedTokenizerBase, question: Question) -> list[int]:
    """The ids a model is taught to write for ``question``: its first gold answer in answer tags, then EOS (SQuAD
    lists the same span several times; one target is enough)."""
    answer = next(a for a in question.answers if a.strip())
    return list(tokenizer(answer_target(answer), add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]


class ChatCollator(MethodCollator):
    """What every method that trains on chat prompts + tagged answers shares: tokenizer, thinking switch, length
    cap, pad id (EOS when the tokenizer has no pad token)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, enable_thinking: bool = False, max_length: int = 1024) -> None:
        super().__init__()
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token to end answers with")
        self.tokenizer = tokenizer
        self.enable_thinking = enable_thinking
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def prompt_ids(self, group: QuestionGroup, question: Question) -> list[int]:
        """The ``batch`` strategy's prompt for one question, as ``evaluate`` sends it."""
        return chat_prompt_ids(self.tokenizer, single_question_messages(group, question), self.enable_thinking)


def in_sequence_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the slots that have a target (their logits only go through the LM head).

    ``batch`` holds a layout: ``input_ids``, ``position_ids``, ``allowed`` (which slot sees which) and ``targets``
    (each slot's own branch's next token, or ``IGNORE_INDEX``), so no target is ever shifted across branches."""
    targets = batch["targets"]
    keep = targets != IGNORE_INDEX
    n_targets = int(keep.sum())
    if n_targets == 0:
        raise ValueError("the batch has no target tokens")
    device_type = batch["input_ids"].device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else \
        next(model.parameters()).dtype  # the mask must match the attention's compute dtype
    mask = additive_mask(batch["allowed"].cpu(), dtype).to(batch["input_ids"].device)
    logits = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                   use_cache=False, logits_to_keep=logits_to_keep_arg(keep)).logits
    logits = kept_logits(logits, keep)
    return F.cross_entropy(logits.float(), targets[keep]), n_targets

