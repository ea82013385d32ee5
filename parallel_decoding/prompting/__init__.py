"""Text in and out of a model: prompts, answer extraction, thinking stripping. Low level: no torch, no model."""
