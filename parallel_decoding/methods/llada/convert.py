"""Convert a causal Qwen3 / Llama checkpoint into a masked-diffusion one (weights unchanged).

    python -m parallel_decoding.methods.llada.convert --out runs/tiny_llada model=tiny_qwen3
    python -m parallel_decoding.methods.llada.convert --out runs/smollm2_llada --shift-logits model=smollm2_135m
    python -m parallel_decoding.methods.llada.convert --out runs/x --path <causal HF dir> [--mask-token-id N]
    python -m parallel_decoding.methods.llada.compare <causal dir> runs/x --values   # check it

Trailing ``key=value`` arguments are Hydra overrides of the model config (``conf/model/``). ``--save-source``
also writes the causal model as loaded (for models with no directory of their own, such as ``tiny_qwen3``), so
``compare`` can check the conversion. ``--shift-logits`` reads position i from hidden state i - 1, as the
causal model was pretrained (Dream / DiffuLLaMA; ``method.shift_logits``): the flag is saved in config.json.
Writes the diffusion model, the tokenizer and ``conversion.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from parallel_decoding.config import CONFIG_DIR
from parallel_decoding.methods.llada.modeling import convert_causal_to_diffusion
from parallel_decoding.models.bundle import ModelBundle
from parallel_decoding.models.pretrained import load_pretrained
from parallel_decoding.utils.cli import exit_on_user_error

CONVERSION_FILE = "conversion.json"
log = logging.getLogger(__name__)


def load_causal(overrides: list[str], path: str | None, dtype: str) -> ModelBundle:
    if path:
        return load_pretrained(Path(path).name, path=path, dtype=dtype)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="generate", overrides=["prompt=unused", f"hardware.dtype={dtype}", *overrides])
    return instantiate(cfg.model.loader)


def convert(bundle: ModelBundle, out: str | Path, mask_token_id: int | None = None,
            save_source: str | Path | None = None, shift_logits: bool = False) -> Path:
    out = Path(out).expanduser()
    if save_source:
        bundle.model.save_pretrained(Path(save_source).expanduser(), safe_serialization=True)
        bundle.tokenizer.save_pretrained(Path(save_source).expanduser())
    rows_before = bundle.model.get_input_embeddings().num_embeddings
    model = convert_causal_to_diffusion(bundle.model, bundle.tokenizer, mask_token_id, shift_logits)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    bundle.tokenizer.save_pretrained(out)
    record = {"source": bundle.name, "model_type": model.config.model_type, "mask_token_id": model.config.mask_token_id,
              "real_vocab_size": model.config.real_vocab_size, "shift_logits": model.config.shift_logits,
              "embedding_rows_before": rows_before,
              "embedding_rows_after": model.get_input_embeddings().num_embeddings}
    (out / CONVERSION_FILE).write_text(json.dumps(record, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where the diffusion model is written")
    parser.add_argument("--path", help="a causal HF directory (instead of model=<name>)")
    parser.add_argument("--mask-token-id", type=int, default=None)
    parser.add_argument("--shift-logits", action="store_true",
                        help="predict position i from hidden state i-1 (keeps a pretrained causal model's reading)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--save-source", help="also save the causal model as loaded here")
    parser.add_argument("overrides", nargs="*", help="model config overrides, e.g. model=tiny_qwen3")
    args = parser.parse_args(argv)
    with exit_on_user_error(log):
        bundle = load_causal(args.overrides, args.path, args.dtype)
        out = convert(bundle, args.out, args.mask_token_id, args.save_source, args.shift_logits)
    print(json.dumps(json.loads((out / CONVERSION_FILE).read_text())))
    print(f"diffusion model written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
