"""When a branch is done: a stop token (kept in the output, like HF ``generate``), a stop string completed by
the last token (kept, like HF ``stop_strings``), or its token budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from transformers import PreTrainedTokenizerBase

EOS, STOP_STRING, LENGTH = "eos", "stop_string", "length"


@dataclass
class StopCriteria:
    max_new_tokens: int
    stop_token_ids: Sequence[int] = ()
    stop_strings: Sequence[str] = ()
    tokenizer: PreTrainedTokenizerBase | None = None
    _stop_ids: frozenset = field(init=False, repr=False)
    _window: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.stop_strings and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer to read the generated text")
        self._stop_ids = frozenset(int(t) for t in self.stop_token_ids)
        # A stop string of m characters is spelled by at most m tokens; a few more cover split UTF-8 bytes.
        self._window = max((len(s) for s in self.stop_strings), default=0) + 4

    def reason(self, generated: Sequence[int]) -> str | None:
        """Why the branch whose output so far is ``generated`` must stop now, or None to continue."""
        if generated and generated[-1] in self._stop_ids:
            return EOS
        if self.stop_strings and generated:
            tail = self.tokenizer.decode(list(generated[-self._window:]), skip_special_tokens=False)
            if any(s in tail for s in self.stop_strings):
                return STOP_STRING
        if len(generated) >= self.max_new_tokens:
            return LENGTH
        return None
