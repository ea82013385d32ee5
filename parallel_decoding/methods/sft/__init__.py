"""Supervised fine-tuning baseline (full or LoRA): ``method=sft`` / ``method=sft_lora``."""

from parallel_decoding.methods.sft.collator import SFTCollator, SFTExample
from parallel_decoding.methods.sft.module import SFTMethod, answer_loss

__all__ = ["SFTCollator", "SFTExample", "SFTMethod", "answer_loss"]
