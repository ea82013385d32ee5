"""The deployed-engine rows of the shared-prefix benchmark: vLLM (and llama.cpp) decode the exact token ids that
the HF strategies decoded, in a process of their own, so they run whatever environment has the engine.

    <python with vllm> engine_rows.py < request.json > result.json      (the last stdout line is the JSON)

The request names the engine, the model (an HF directory for vLLM, an F32 GGUF for llama.cpp), the stop token
ids and budget of the HF backend, one warm-up group and the measured groups (each a list of prompt token ids).
Modes, per group, interleaved with the order rotated group by group (as the HF worker does), each after an
unmeasured warm-up group:

* ``batch``: one ``generate`` call with all the group's prompts (vLLM batches them and computes their shared
  prefix once through its automatic prefix cache);
* ``independent``: one call per question, in order (a server answering questions as they arrive; later
  questions still hit the prefix cached by the earlier ones of the same group).

The prefix cache is reset before every (group, mode), so no group starts with cached tokens from another run.
Per run: wall seconds of the calls, generated tokens, engine steps (forward passes), prompt tokens sent and
prompt tokens actually computed (sent minus the engine's reported cache hits), and the answers as ids and text.

Only the standard library and the engine are imported here: the script does not need this project installed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _trim(ids: list[int], stop: set[int]) -> list[int]:
    """Ids up to and including the first stop token (the HF backend's ``trim_at_stop``)."""
    out = []
    for tok in ids:
        out.append(int(tok))
        if tok in stop:
            break
    return out


class VLLMRunner:
    """vLLM in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless the request keeps the engine-core
    process), greedy, dtype float32, eager, automatic prefix caching on."""

    name = "vllm"

    def __init__(self, request: dict) -> None:
        threads = int(request.get("threads") or 0)
        if threads > 0:
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{threads - 1}")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(request.get("kv_cache_gb", 1)))
        if not request.get("multiprocessing", False):
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        import vllm  # lazy: vLLM is an optional extra (its own venv on CPU)
        from vllm import SamplingParams

        self.version = vllm.__version__
        self.llm = vllm.LLM(model=request["model"], dtype=request.get("dtype", "float32"), enforce_eager=True,
                            enable_prefix_caching=True, seed=0, max_model_len=request.get("max_model_len", 4096))
        self.tokenizer = self.llm.get_tokenizer()
        self.stop = set(request["stop_token_ids"])
        self.params = SamplingParams(max_tokens=request["max_new_tokens"], temperature=0.0,
                                     stop_token_ids=sorted(self.stop), skip_special_tokens=True)
        self.steps = 0
        engine = self.llm.llm_engine
        original = engine.step

        def counted_step():  # one engine step = one scheduled model forward (prefill chunk and/or decode)
            self.steps += 1
            return original()

        engine.step = counted_step
        # With the engine core in another process a step only polls for output: forwards are not countable.
        self.count_steps = not request.get("multiprocessing", False)

    def reset(self) -> None:
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM refused to reset its prefix cache")

    def generate(self, prompts: list[list[int]]) -> list[tuple[list[int], int]]:
        """(answer ids, prompt tokens served from the cache) per prompt, in order."""
        from vllm.inputs import TokensPrompt  # lazy: vLLM, an optional extra

        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], self.params,
                                    use_tqdm=False)
        return [(_trim(list(o.outputs[0].token_ids), self.stop), int(o.num_cached_tokens or 0)) for o in outputs]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


class LlamaCppRunner:
    """llama.cpp through ``llama-cpp-python``: an F32 GGUF, greedy. Its ``generate`` keeps the KV cache of the
    previous prompt and recomputes only what follows the longest common prefix, so ``independent`` reuses a
    group's context from question to question; ``batch`` is not offered (no multi-sequence API there)."""

    name = "llama_cpp"

    def __init__(self, request: dict) -> None:
        import llama_cpp  # lazy: llama-cpp-python is optional (its own venv)

        self.version = llama_cpp.__version__
        threads = int(request.get("threads") or 0) or None
        self.llm = llama_cpp.Llama(model_path=request["model"], n_ctx=request.get("max_model_len", 4096),
                                   n_threads=threads, n_threads_batch=threads, seed=0, verbose=False)
        self.stop = set(request["stop_token_ids"])
        self.max_new_tokens = request["max_new_tokens"]
        self.steps = 0
        self.count_steps = True

    def reset(self) -> None:
        self.llm.reset()

    def generate(self, prompts: list[list[int]]) -> list[tuple[list[int], int]]:
        results = []
        for prompt in prompts:
            cached = 0  # what generate() will keep of the previous prompt's cache: the longest common prefix
            for a, b in zip(self.llm._input_ids.tolist(), prompt[:-1]):  # it always recomputes the last token
                if a != b:
                    break
                cached += 1
            ids: list[int] = []
            for tok in self.llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0,
                                         reset=True):
                self.steps += 1
                ids.append(int(tok))
                if tok in self.stop or len(ids) >= self.max_new_tokens:
                    break
            results.append((ids, cached))
        return results

    def decode(self, ids: list[int]) -> str:
        return self.llm.detokenize([t for t in ids if t not in self.stop]).decode("utf-8", errors="replace")


RUNNERS = {"vllm": VLLMRunner, "llama_cpp": LlamaCppRunner}


def run_group(runner: Any, mode: str, prompts: list[list[int]]) -> dict:
    runner.reset()
    steps_before = runner.steps
    start = time.perf_counter()
    if mode == "batch":
        results = runner.generate(prompts)
    else:
        results = [r for p in prompts for r in runner.generate([p])]
    latency = time.perf_counter() - start
    prompt_tokens = sum(len(p) for p in prompts)
    return {"latency_s": latency, "generated_tokens": sum(len(ids) for ids, _ in results),
            "forward_passes": runner.steps - steps_before if runner.count_steps else None,
            "prompt_tokens": prompt_tokens, "computed_prompt_tokens": prompt_tokens - sum(c for _, c in results),
            "answer_ids": [ids for ids, _ in results], "answers": [runner.decode(ids) for ids, _ in results]}


def run(request: dict) -> dict:
    started = time.perf_counter()
    runner = RUNNERS[request["engine"]](request)
    startup_s = time.perf_counter() - started
    modes = list(request["modes"])
    for mode in modes:  # unmeasured warm-up: lazy initialisation never lands in a measured group
        run_group(runner, mode, request["warmup"])
    runs: dict[str, list[dict]] = {f"{runner.name}_{mode}": [] for mode in modes}
    for index, group in enumerate(request["groups"]):
        shift = index % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            runs[f"{runner.name}_{mode}"].append({"group": group["id"], **run_group(runner, mode, group["prompts"])})
    return {"engine": runner.name, "version": runner.version, "startup_s": round(startup_s, 2), "runs": runs}


def main() -> int:
    result = run(json.load(sys.stdin))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
