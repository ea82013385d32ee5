"""Masked-diffusion LM (LLaDA) on a Qwen3 / Llama backbone: model, noising, losses, block attention, sampler,
data and the ``method=llada`` LightningModule. See ``module.py`` for the commands."""

from parallel_decoding.methods.llada.modeling import (LlamaDiffusionConfig, LlamaDiffusionLM, Qwen3DiffusionConfig,
                                                      Qwen3DiffusionLM, convert_causal_to_diffusion,
                                                      is_diffusion_model, load_diffusion_model)
from parallel_decoding.methods.llada.module import LLaDAMethod, load_diffusion_bundle
from parallel_decoding.methods.llada.sampler import SamplerResult, SamplerSettings, diffusion_generate

__all__ = ["LLaDAMethod", "LlamaDiffusionConfig", "LlamaDiffusionLM", "Qwen3DiffusionConfig", "Qwen3DiffusionLM",
           "SamplerResult", "SamplerSettings", "convert_causal_to_diffusion", "diffusion_generate",
           "is_diffusion_model", "load_diffusion_bundle", "load_diffusion_model"]
