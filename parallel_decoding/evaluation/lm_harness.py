"""This project as an lm-evaluation-harness model: ``--model parallel_decoding`` runs lm-eval tasks with any of
our decoders, so results (GSM8K, HumanEval, ... with the ``llada`` sampler) sit beside published ones.

    python -m parallel_decoding.lm_eval --model parallel_decoding \\
        --model_args model=smollm2_135m,decoder=batch_shared --tasks gsm8k --batch_size 8

lm-eval 0.4.x discovers no out-of-tree models (no entry-point group; upstream issues #1457, #1621, #3282), so
the model is registered by importing this module (``@register_model``); ``python -m parallel_decoding.lm_eval``
does that and then runs lm-eval's own CLI with the same arguments. From Python: ``import
parallel_decoding.evaluation.lm_harness`` and ``lm_eval.simple_evaluate(model="parallel_decoding", ...)``.

``model_args`` (``key=value,...``):

- ``decoder``: ``independent`` (one ``generate`` per request, the reference), ``batch`` (left-padded batches),
  ``batch_shared`` (requests sorted by their token ids and decoded ``batch_size`` at a time as branches of their
  common prefix: few-shot prompts share their shots, prefilled once), ``llada`` (the masked-diffusion sampler).
- ``model``: a ``conf/model`` name (causal decoders); ``hardware``: ``cpu`` / ``gpu`` (``conf/hardware``; by default
  ``gpu`` when lm-eval's ``--device`` is ``cuda...`` and a GPU is there); any dotted key is a Hydra override (``model.path=/models/Qwen3-4B``,
  ``hardware.dtype=float32``).
- ``llada`` only: ``checkpoint`` (a diffusion model directory) and the sampler's settings by name
  (``gen_length``, ``steps``, ``block_length``, ``threshold``, ``prefix_cache``, ``block_attention``,
  ``remasking``, ``temperature``, ``cfg_scale``, ``early_stop``, ``seed``), defaults from
  ``conf/strategy/llada.yaml``. The answer window is ``gen_length``, cut at the task's ``max_gen_toks``.

``generate_until`` answers are cut at the task's ``until`` strings as lm-eval's HF model cuts them (greedy
answers equal lm-eval's ``hf`` model's; tested). ``loglikelihood`` / ``loglikelihood_rolling`` are the summed
log-probabilities of the causal model (one padded forward per batch); the diffusion sampler defines none and
refuses them. ``get_model_info`` adds the decoder's counts (forward passes, generated tokens, tokens per
forward) to lm-eval's results. ``bundle=`` (Python only) answers with an already loaded ``ModelBundle``, as
lm-eval's ``HFLM(pretrained=<model>)`` does.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import fields
from typing import Any, Sequence

import lm_eval.models  # noqa: F401  (lm-eval's own models first: its registry skips that import once not empty)
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from omegaconf import OmegaConf

from parallel_decoding.backends.hf import GenerationSettings, HFBackend
from parallel_decoding.config import CONFIG_DIR, ConfigError
from parallel_decoding.decoding import SharedPrefixDecoder, split_shared_prefix
from parallel_decoding.methods.llada.modeling import is_diffusion_model
from parallel_decoding.methods.llada.sampler import SamplerSettings, diffusion_generate
from parallel_decoding.methods.llada.strategy import load_llada_bundle
from parallel_decoding.strategies import strategy_config

log = logging.getLogger(__name__)

MODEL_NAME = "parallel_decoding"
DECODERS = ("independent", "batch", "batch_shared", "llada")
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's default when a task names none


def _sampler_fields() -> set[str]:
    return {f.name for f in fields(SamplerSettings)}


def _parse_batch_size(value: Any) -> int:
    """lm-eval passes ``--batch_size`` as given (an int, ``"8"`` or ``"auto[:N]"``)."""
    if value is None:
        return 1
    text = str(value)
    if text.startswith("auto"):
        log.warning("batch_size=%s: automatic batch sizes are not supported here; using 8 (pass --batch_size N)",
                    text)
        return 8
    try:
        size = int(text)
    except ValueError as err:
        raise ConfigError(f"batch_size must be an integer or 'auto', got {value!r}") from err
    if size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {size}")
    return size


def compose_run_config(model: str | None, hardware: str, overrides: Sequence[str]):
    """The ``evaluate`` config with these choices: the same loaders and defaults an ``evaluate`` run uses."""
    choices = ([f"model={model}"] if model else []) + [f"hardware={hardware}", *overrides]
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="evaluate", overrides=choices)
    except Exception as err:  # a bad group name or key: Hydra's message, as a user error
        raise ConfigError(f"model_args: {err}") from err


@register_model(MODEL_NAME)
class ParallelDecodingLM(TemplateLM):
    """An lm-eval ``LM`` answering with one of this project's decoders (see the module docstring)."""

    def __init__(self, model: str = "smollm2_135m", decoder: str = "independent", hardware: str | None = None,
                 checkpoint: str | None = None, batch_size: Any = 1, max_batch_size: Any = None,
                 device: str | None = None, max_length: int | None = None, max_gen_toks: int = DEFAULT_MAX_GEN_TOKS,
                 seed: int = 0, bundle: Any = None, **options: Any) -> None:
        super().__init__()

        if decoder not in DECODERS:
            raise ConfigError(f"decoder={decoder!r}: one of {', '.join(DECODERS)}")
        self.decoder = decoder
        self.batch_size = _parse_batch_size(batch_size)
        self.max_gen_toks = int(max_gen_toks)
        self.seed = int(seed)
        overrides = [f"{k}={v}" for k, v in options.items() if "." in k]
        sampler = {k: v for k, v in options.items() if "." not in k}
        unknown = set(sampler) - _sampler_fields()
        if unknown:
            raise ConfigError(f"unknown model_args {sorted(unknown)}; known: decoder, model, hardware, checkpoint, "
                              f"max_length, max_gen_toks, seed, dotted Hydra overrides, and for decoder=llada "
                              f"{sorted(_sampler_fields())}")
        if hardware is None:  # lm-eval's CLI passes device=cuda unless told otherwise, GPU or not
            hardware = "gpu" if str(device).startswith("cuda") and torch.cuda.is_available() else "cpu"
            log.info("hardware=%s (device=%s; model_args hardware=cpu|gpu chooses)", hardware, device)
        if device and hardware == "gpu" and str(device).startswith("cuda:"):
            overrides.append(f"hardware.device={device}")
        cfg = compose_run_config(None if decoder == "llada" else model, hardware, overrides)
        self.settings = GenerationSettings(max_new_tokens=self.max_gen_toks, seed=self.seed)
        if decoder == "llada":
            self.sampler = self._llada_settings(sampler, checkpoint, has_bundle=bundle is not None)
            if bundle is None:
                bundle = load_llada_bundle(checkpoint, dtype=str(cfg.hardware.dtype),
                                           device=str(cfg.hardware.device),
                                           attn_implementation=cfg.model.get("attn_implementation", "sdpa"))
            elif not is_diffusion_model(bundle.model):
                raise ConfigError("decoder=llada needs a diffusion model")
        else:
            if sampler or checkpoint:
                raise ConfigError(f"{sorted([*sampler, *(['checkpoint'] if checkpoint else [])])} apply to "
                                  f"decoder=llada only (decoder={decoder})")
            self.sampler = None
            bundle = bundle if bundle is not None else instantiate(cfg.model.loader)
        self.backend = HFBackend(bundle, self.settings)
        self.bundle, self.model, self.tokenizer = bundle, bundle.model, bundle.tokenizer
        self._device = bundle.device
        self._max_length = int(max_length) if max_length else int(
            getattr(self.model.config, "max_position_embeddings", 2048))
        self.counts: dict[str, float] = defaultdict(float)

    @staticmethod
    def _llada_settings(sampler: dict[str, Any], checkpoint: str | None, has_bundle: bool = False):
        if not checkpoint and not has_bundle:
            raise ConfigError("decoder=llada needs checkpoint=<a diffusion model dir: the model/ of a train "
                              "method=llada run, or python -m parallel_decoding.methods.llada.convert's output>")
        defaults = OmegaConf.to_container(strategy_config("llada").sampler, resolve=True)
        return SamplerSettings(**{**defaults, **sampler})

    # -- lm-eval's tokenizer-facing API --------------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        """Prompts carry their own special tokens (a chat template adds them), so none are added by default."""
        return list(self.tokenizer.encode(string, add_special_tokens=bool(add_special_tokens)))

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", self.bundle.name)).replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt,
                                                  enable_thinking=self.bundle.enable_thinking)

    def get_model_info(self) -> dict[str, Any]:
        """Written into lm-eval's results ``config``: what decoded, and what it cost."""
        counts = dict(self.counts)
        info: dict[str, Any] = {"decoder": self.decoder, "model_name": self.bundle.name,
                                "batch_size_used": self.batch_size, "counts": counts}
        if self.sampler is not None:
            info["sampler"] = self.sampler.to_dict()
            if counts.get("row_forward_passes"):
                info["tokens_per_forward"] = counts["decoded_tokens"] / counts["row_forward_passes"]
        elif counts.get("forward_passes"):
            info["tokens_per_forward"] = counts["generated_tokens"] / counts["forward_passes"]
        return info

    # -- loglikelihood -------------------------------------------------------------------------------------------
    def _refuse_for_diffusion(self, request_type: str) -> None:
        if self.decoder == "llada":
            raise ConfigError(f"decoder=llada defines no {request_type} (a masked-diffusion model has no "
                              f"left-to-right likelihood); run this task with a causal decoder (independent, batch, "
                              f"batch_shared), or choose generate_until tasks")

    @torch.inference_mode()
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """``(sum of log p(continuation | context), whether greedy decoding gives the continuation)``, batches of
        left-padded rows with positions counted from each row's first token, longest first."""
        self._refuse_for_diffusion("loglikelihood")
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][1]) + len(requests[i][2])))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eot_token_id
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            rows = []
            for i in chunk:
                _, context, continuation = requests[i]
                if not continuation:
                    raise ConfigError("a loglikelihood request with an empty continuation")
                whole = (list(context) + list(continuation))[-(self.max_length + 1):]
                rows.append((whole[:-1], list(continuation)[-(len(whole) - 1):]))
            width = max(len(inp) for inp, _ in rows)
            keep = max(len(cont) for _, cont in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, (inp, _) in enumerate(rows):
                ids[r, width - len(inp):] = torch.tensor(inp)
                mask[r, width - len(inp):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            device = self.bundle.device
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                position_ids=positions.to(device), logits_to_keep=keep).logits
            self.counts["loglikelihood_forward_passes"] += 1
            for r, (i, (_, cont)) in enumerate(zip(chunk, rows)):
                scores = logits[r, keep - len(cont):].float().log_softmax(-1)
                target = torch.tensor(cont, device=scores.device)
                total = float(scores.gather(-1, target[:, None]).sum())
                greedy = bool((scores.argmax(-1) == target).all())
                results[i] = (total, greedy)
                if requests[i][0] is not None:
                    self.cache_hook.add_partial("loglikelihood", requests[i][0], results[i])
        return results  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Each document's log-likelihood in disjoint windows of at most ``max_length`` tokens (lm-eval's rule)."""
        self._refuse_for_diffusion("loglikelihood_rolling")
        out = []
        for (string,) in [req.args for req in requests]:
            windows = map(lm_utils.make_disjoint_window, lm_utils.get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            total = sum(score for score, _ in self._loglikelihood_tokens([(None, c, t) for c, t in windows]))
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            out.append(total)
        return out

    # -- generation ----------------------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Requests grouped by their generation settings (as lm-eval's HF model does), each group decoded by the
        chosen decoder, every answer cut at the first stop string."""
        args = [req.args for req in requests]
        results: list[str | None] = [None] * len(args)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (_, gen_kwargs) in enumerate(args):
            groups[json.dumps(gen_kwargs, sort_keys=True, default=str)].append(i)
        eos = self.tokenizer.decode([self.eot_token_id], skip_special_tokens=False)
        for indices in groups.values():
            kwargs = normalize_gen_kwargs(args[indices[0]][1], self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen = int(kwargs.pop("max_gen_toks"))
            budget = self.sampler.gen_length if self.sampler is not None else max_gen
            if budget >= self.max_length:
                raise ConfigError(f"{budget} tokens to generate leave no room for a prompt in max_length "
                                  f"{self.max_length}")
            prompts = [self.tok_encode(args[i][0])[-(self.max_length - budget):] for i in indices]
            outputs = self._decode(prompts, max_gen, until, kwargs)
            for i, ids in zip(indices, outputs):
                text = postprocess_generated_text(self.tokenizer.decode(ids, skip_special_tokens=True), until, None)
                results[i] = text
                self.cache_hook.add_partial("generate_until", args[i], text)
        return results  # type: ignore[return-value]

    def _decode(self, prompts: list[list[int]], max_gen: int, until: list[str], kwargs: dict) -> list[list[int]]:
        """Token ids answering each prompt (stop token included when reached), in the prompts' order."""
        do_sample = bool(kwargs.get("do_sample", False))
        temperature = float(kwargs.get("temperature", 0.0) or 0.0)
        top_p = float(kwargs.get("top_p", 1.0) or 1.0)
        self.backend.settings = GenerationSettings(max_new_tokens=max_gen, do_sample=do_sample,
                                                   temperature=temperature if do_sample else 1.0, top_p=top_p,
                                                   seed=self.seed)
        stops = [s for s in until if s]
        passes_before = self.backend._forward_passes
        if self.decoder == "independent":
            outputs = [self.backend.generate([p], max_new_tokens=max_gen, stop_strings=stops)[0] for p in prompts]
        elif self.decoder == "batch":
            outputs = self._in_batches(prompts, lambda chunk: self.backend.generate(
                chunk, max_new_tokens=max_gen, stop_strings=stops), key=len)
        elif self.decoder == "batch_shared":
            outputs = self._in_batches(prompts, lambda chunk: self._shared_prefix(chunk, max_gen, stops),
                                       key=lambda p: p)
        else:
            if do_sample:
                log.warning("decoder=llada samples with its own settings (temperature=%s); the task's do_sample / "
                            "temperature are not used", self.sampler.temperature)
            outputs = [ids[:max_gen] for ids in self._in_batches(prompts, self._diffusion, key=len)]
        self.counts["forward_passes"] += self.backend._forward_passes - passes_before
        self.counts["generated_tokens"] += sum(len(o) for o in outputs)
        self.counts["requests"] += len(prompts)
        return outputs

    def _in_batches(self, prompts: list[list[int]], decode, key) -> list[list[int]]:
        """``decode`` over ``batch_size`` prompts at a time, in ``key`` order (similar prompts together)."""
        order = sorted(range(len(prompts)), key=lambda i: key(prompts[i]))
        outputs: list[list[int] | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for i, ids in zip(chunk, decode([prompts[i] for i in chunk])):
                outputs[i] = ids
        return outputs  # type: ignore[return-value]

    def _shared_prefix(self, prompts: list[list[int]], max_gen: int, stops: list[str]) -> list[list[int]]:
        prefix, branches = split_shared_prefix(prompts)
        settings = self.backend.settings
        decoder = SharedPrefixDecoder(self.model, pad_token_id=self.tokenizer.pad_token_id, tokenizer=self.tokenizer)
        result = decoder.generate(prefix, branches, layout="batch_shared", max_new_tokens=max_gen,
                                  stop_token_ids=self.backend.stop_token_ids, stop_strings=stops,
                                  sampling=settings.sampling())
        self.counts["shared_prefix_tokens"] += len(prefix) * (len(prompts) - 1)  # prefill tokens not recomputed
        return [self.backend.trim_at_stop(ids) for ids in result.sequences]

    def _diffusion(self, prompts: list[list[int]]) -> list[list[int]]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eot_token_id
        result = diffusion_generate(self.model, prompts, self.sampler, pad_token_id=pad,
                                    stop_token_ids=self.backend.stop_token_ids)
        self.counts["sampler_forward_passes"] += result.forward_passes
        self.counts["sampler_steps"] += result.steps
        self.counts["decoded_tokens"] += result.decoded
        self.counts["row_forward_passes"] += result.forward_passes * len(prompts)
        return [self.backend.trim_at_stop(row) for row in result.tokens.tolist()]
