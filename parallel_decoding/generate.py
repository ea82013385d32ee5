"""One prompt, one decoder: HF ``generate`` for causal models, the masked-diffusion sampler for diffusion ones.

    python -m parallel_decoding.generate model=smollm2_135m prompt="Where is the Eiffel Tower?"
    python -m parallel_decoding.generate model=tiny_qwen3 checkpoint=<train run dir>/model prompt="..." \
        sampler.threshold=0.9 sampler.prefix_cache=true

Prints the answer and writes ``generation.json`` (prompt, text, token ids, decoder, settings, cost) in the run dir.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from parallel_decoding.backends.base import GenerationSettings
from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import CONFIG_DIR, ConfigError
from parallel_decoding.methods.base import load_trained
from parallel_decoding.methods.llada.modeling import DIFFUSION_CLASSES, is_diffusion_model
from parallel_decoding.methods.llada.module import load_diffusion_bundle
from parallel_decoding.methods.llada.sampler import SamplerSettings, diffusion_generate
from parallel_decoding.models.bundle import ModelBundle, check_saved_model_dir
from parallel_decoding.prompting.chat import chat_prompt_ids
from parallel_decoding.utils.cli import exit_on_user_error, run_hydra_app

log = logging.getLogger(__name__)
DECODERS = ("auto", "hf", "diffusion")
RESULT_FILE = "generation.json"


def load_bundle(cfg: DictConfig) -> ModelBundle:
    """``checkpoint`` (any saved dir: train's export, a converted diffusion dir, a plain HF dir) or the model config."""
    if cfg.get("checkpoint"):
        directory = check_saved_model_dir(cfg.checkpoint, "checkpoint")
        kwargs = dict(dtype=cfg.hardware.dtype, device=cfg.hardware.device,
                      attn_implementation=cfg.model.get("attn_implementation", "sdpa"))
        model_type = json.loads((directory / "config.json").read_text()).get("model_type")
        diffusion_types = {c.model_type for c, _ in DIFFUSION_CLASSES.values()}
        if model_type in diffusion_types and not (directory / "method.yaml").is_file():
            return load_diffusion_bundle(directory, **kwargs)
        return load_trained(directory, **kwargs)
    return instantiate(cfg.model.loader)


def prompt_ids(bundle: ModelBundle, cfg: DictConfig) -> list[int]:
    if not cfg.chat:
        return list(bundle.tokenizer(str(cfg.prompt), add_special_tokens=True)["input_ids"])
    messages = ([{"role": "system", "content": str(cfg.system)}] if cfg.get("system") else []) + \
        [{"role": "user", "content": str(cfg.prompt)}]
    return chat_prompt_ids(bundle.tokenizer, messages, bundle.enable_thinking)


def generate_once(bundle: ModelBundle, cfg: DictConfig) -> dict[str, Any]:
    decoder = cfg.decoder
    if decoder not in DECODERS:
        raise ConfigError(f"decoder={decoder!r}; use one of {', '.join(DECODERS)}")
    diffusion = is_diffusion_model(bundle.model)
    if decoder == "auto":
        decoder = "diffusion" if diffusion else "hf"
    if decoder != ("diffusion" if diffusion else "hf"):
        raise ConfigError(f"decoder={decoder} does not fit a {'diffusion' if diffusion else 'causal'} model; "
                          f"use decoder=auto")
    backend = HFBackend(bundle, GenerationSettings(**cfg.generation, seed=cfg.seed))
    ids = prompt_ids(bundle, cfg)
    settings: dict[str, Any]
    with backend.measure() as stats:
        if decoder == "hf":
            output = backend.generate([ids])[0]
            settings, extra = OmegaConf.to_container(cfg.generation, resolve=True), {}
        else:
            sampler = SamplerSettings(**OmegaConf.to_container(cfg.sampler, resolve=True))
            pad = bundle.tokenizer.pad_token_id if bundle.tokenizer.pad_token_id is not None \
                else bundle.tokenizer.eos_token_id
            result = diffusion_generate(bundle.model, [ids], sampler, pad_token_id=pad,
                                        stop_token_ids=backend.stop_token_ids)
            output = backend.trim_at_stop(result.tokens[0].tolist())
            backend.record([ids], [output], calls=1)
            settings = sampler.to_dict()
            extra = {"sampler_steps": result.steps, "decoded_tokens": result.decoded,
                     "tokens_per_forward": round(result.tokens_per_forward, 4)}
    return {"decoder": decoder, "model": bundle.name, "prompt": str(cfg.prompt), "text": backend.decode(output),
            "prompt_ids": ids, "output_ids": output, "settings": settings, "efficiency": stats.to_dict(), **extra}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error(log):
        torch.manual_seed(cfg.seed)
        start = time.perf_counter()
        bundle = load_bundle(cfg)
        result = generate_once(bundle, cfg)
        result["load_and_generate_s"] = round(time.perf_counter() - start, 3)
        out = Path(HydraConfig.get().runtime.output_dir) / RESULT_FILE
        out.write_text(json.dumps(result, indent=1))
        print(result["text"])
        log.info("%s decoder, %d forward passes; written to %s", result["decoder"],
                 result["efficiency"]["forward_passes"], out)


if __name__ == "__main__":
    run_hydra_app(main)
