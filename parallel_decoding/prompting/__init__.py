"""Text in and out of a model: prompts, chat encoding, answer extraction, thinking stripping, JSON found in prose.
Low level: no torch, no model."""
