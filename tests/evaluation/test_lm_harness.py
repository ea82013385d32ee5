"""The lm-eval model ``parallel_decoding`` against lm-eval's own HF model (``HFLM``, an independent
implementation) on the same tiny Qwen3 weights: log-likelihoods, rolling log-likelihoods and greedy answers of
every causal decoder; the llada decoder against the sampler called on each prompt alone; and the CLI end to end
on tasks defined in YAML over local JSON files the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from transformers import Qwen3ForCausalLM

from parallel_decoding.config import ConfigError
from parallel_decoding.evaluation.lm_harness import ParallelDecodingLM
from parallel_decoding.methods.llada.modeling import convert_causal_to_diffusion
from parallel_decoding.methods.llada.sampler import SamplerSettings, diffusion_generate

from tests.helpers import run_module

QA = [{"question": f"What is {a} plus {b}?", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (5, 6), (2, 2)]]
MC = [{"question": "The sky is", "choices": [" blue", " green", " loud"], "label": 0},
      {"question": "Two plus two is", "choices": [" four", " five"], "label": 0},
      {"question": "Fire is", "choices": [" cold", " hot", " wet"], "label": 1},
      {"question": "Ice is", "choices": [" hot", " cold"], "label": 1}]


def write_tasks(directory: Path) -> Path:
    """A generate_until task and a multiple-choice (loglikelihood) task over local JSON files."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "qa.json").write_text(json.dumps(QA))
    (directory / "mc.json").write_text(json.dumps(MC))
    (directory / "pd_qa.yaml").write_text(f"""task: pd_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {directory / 'qa.json'}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n", "."]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""")
    (directory / "pd_mc.yaml").write_text(f"""task: pd_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {directory / 'mc.json'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""")
    return directory


def instances(kind: str, arguments: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(arguments)]


LL_REQUESTS = [(d["question"], c) for d in MC for c in d["choices"]] + [("", "hello world"), ("Question: x", " 42\n")]
GEN_REQUESTS = ([(f"Question: {d['question']}\nAnswer:", {"until": ["\n"], "max_gen_toks": 8, "do_sample": False})
                 for d in QA] + [(f"Q: {d['question']} A:", {"until": ["."], "max_gen_toks": 5, "do_sample": False})
                                 for d in QA[:2]])


@pytest.fixture(scope="module")
def reference(tiny_bundle):
    return HFLM(pretrained=tiny_bundle.model, tokenizer=tiny_bundle.tokenizer, batch_size=1, device="cpu")


@pytest.fixture(scope="module")
def ours(tiny_bundle):
    return {decoder: ParallelDecodingLM(decoder=decoder, bundle=tiny_bundle, batch_size=3)
            for decoder in ("independent", "batch", "batch_shared")}


def test_loglikelihood_equals_lm_evals_hf_model(ours, reference):
    expected = reference.loglikelihood(instances("loglikelihood", LL_REQUESTS))
    for decoder, lm in ours.items():  # padded batches of 3 against HFLM's one request at a time
        got = lm.loglikelihood(instances("loglikelihood", LL_REQUESTS))
        assert [g for _, g in got] == [g for _, g in expected], decoder
        assert torch.allclose(torch.tensor([s for s, _ in got]), torch.tensor([s for s, _ in expected]),
                              atol=1e-4, rtol=1e-5), decoder


def test_loglikelihood_equals_a_direct_forward(ours, tiny_bundle):
    """Summed log-probabilities of the continuation tokens from one unpadded forward of context + continuation."""
    tok, model = tiny_bundle.tokenizer, tiny_bundle.model
    got = ours["batch"].loglikelihood(instances("loglikelihood", LL_REQUESTS[:6]))
    for (context, continuation), (score, _) in zip(LL_REQUESTS[:6], got):
        whole = tok.encode(context + continuation, add_special_tokens=False)
        n_context = len(tok.encode(context, add_special_tokens=False))
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([whole])).logits[0].log_softmax(-1)
        direct = sum(float(logp[i - 1, whole[i]]) for i in range(n_context, len(whole)))
        assert score == pytest.approx(direct, abs=1e-4)


def test_rolling_loglikelihood_over_several_windows_equals_lm_evals(tiny_bundle):
    texts = [("The quick brown fox jumps over the lazy dog. " * 3,), ("short",)]
    ours = ParallelDecodingLM(decoder="batch", bundle=tiny_bundle, batch_size=2, max_length=12)
    reference = HFLM(pretrained=tiny_bundle.model, tokenizer=tiny_bundle.tokenizer, batch_size=1, device="cpu",
                     max_length=12)
    got = ours.loglikelihood_rolling(instances("loglikelihood_rolling", texts))
    expected = reference.loglikelihood_rolling(instances("loglikelihood_rolling", texts))
    assert got == pytest.approx(expected, abs=1e-3)


def test_greedy_answers_of_every_decoder_equal_lm_evals_hf_model(ours, reference):
    expected = reference.generate_until(instances("generate_until", GEN_REQUESTS))
    assert any(expected)  # the comparison is over text, not empty strings alone
    for decoder, lm in ours.items():
        assert lm.generate_until(instances("generate_until", GEN_REQUESTS)) == expected, decoder
    shared = ours["batch_shared"].get_model_info()
    assert shared["decoder"] == "batch_shared" and shared["counts"]["shared_prefix_tokens"] > 0


@pytest.fixture(scope="module")
def llada_dir(tiny_bundle, tmp_path_factory):
    """The tiny model converted to diffusion and saved, as ``methods.llada.convert`` writes it."""
    fresh = Qwen3ForCausalLM(tiny_bundle.model.config)
    fresh.load_state_dict(tiny_bundle.model.state_dict())
    fresh.generation_config = tiny_bundle.model.generation_config
    model = convert_causal_to_diffusion(fresh, tiny_bundle.tokenizer).eval()
    out = tmp_path_factory.mktemp("tiny_llada")
    model.save_pretrained(out, safe_serialization=True)
    tiny_bundle.tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("options", [dict(gen_length=8, block_length=4, steps=8),
                                     dict(gen_length=8, block_length=4, threshold=0.5, prefix_cache=True)])
def test_llada_answers_equal_the_sampler_on_each_prompt_alone(llada_dir, options):
    lm = ParallelDecodingLM(decoder="llada", checkpoint=str(llada_dir), batch_size=3, **options)
    got = lm.generate_until(instances("generate_until", GEN_REQUESTS))
    settings = SamplerSettings(**{**SamplerSettings().to_dict(), "early_stop": True, **options})
    tok = lm.tokenizer
    for (context, gen_kwargs), answer in zip(GEN_REQUESTS, got):
        ids = tok.encode(context, add_special_tokens=False)
        row = diffusion_generate(lm.model, [ids], settings, pad_token_id=tok.pad_token_id,
                                 stop_token_ids=lm.bundle.stop_token_ids).tokens[0].tolist()
        row = lm.backend.trim_at_stop(row)[:gen_kwargs["max_gen_toks"]]
        text = tok.decode(row, skip_special_tokens=True)
        for stop in gen_kwargs["until"]:
            text = text.split(stop)[0]
        assert answer == text
    info = lm.get_model_info()
    assert info["sampler"]["gen_length"] == 8 and info["tokens_per_forward"] > 0


def test_llada_refuses_loglikelihood_and_bad_settings(llada_dir, tiny_bundle):
    lm = ParallelDecodingLM(decoder="llada", checkpoint=str(llada_dir), gen_length=8, block_length=4, steps=8)
    with pytest.raises(ConfigError, match="defines no loglikelihood"):
        lm.loglikelihood(instances("loglikelihood", LL_REQUESTS[:2]))
    with pytest.raises(ConfigError, match="defines no loglikelihood_rolling"):
        lm.loglikelihood_rolling(instances("loglikelihood_rolling", [("text",)]))
    with pytest.raises(ConfigError, match="needs checkpoint"):
        ParallelDecodingLM(decoder="llada")
    with pytest.raises(ConfigError, match="decoder=llada only"):
        ParallelDecodingLM(decoder="batch", bundle=tiny_bundle, threshold=0.9)
    with pytest.raises(ConfigError, match="unknown model_args"):
        ParallelDecodingLM(decoder="batch", bundle=tiny_bundle, treshold=0.9)
    with pytest.raises(ConfigError, match="decoder="):
        ParallelDecodingLM(decoder="nope")


@pytest.mark.slow  # lm-eval's CLI indexes its thousands of task YAMLs first: minutes on a busy 2-core machine
def test_cli_runs_local_yaml_tasks_and_matches_the_reference(tmp_path, reference):
    tasks = write_tasks(tmp_path / "tasks")
    out = tmp_path / "out"
    result = run_module("parallel_decoding.lm_eval", "--model", "parallel_decoding", "--model_args",
                        "model=tiny_qwen3,decoder=batch_shared", "--tasks", "pd_qa,pd_mc", "--include_path",
                        str(tasks), "--batch_size", "4", "--output_path", str(out), "--log_samples",
                        env={"HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "|pd_qa|" in result.stdout and "|pd_mc|" in result.stdout
    [results_file] = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    assert results["config"]["decoder"] == "batch_shared"
    # accuracy from the reference's log-likelihoods of the same choices
    scores = reference.loglikelihood(instances("loglikelihood", [(d["question"], c) for d in MC for c in d["choices"]]))
    correct, k = 0, 0
    for doc in MC:
        chunk = [s for s, _ in scores[k:k + len(doc["choices"])]]
        correct += int(max(range(len(chunk)), key=chunk.__getitem__) == doc["label"])
        k += len(doc["choices"])
    assert results["results"]["pd_mc"]["acc,none"] == pytest.approx(correct / len(MC))
    expected = reference.generate_until(instances("generate_until", [
        (f"Question: {d['question']}\nAnswer:", {"until": ["\n", "."], "max_gen_toks": 8, "do_sample": False})
        for d in QA]))
    [samples_file] = out.rglob("samples_pd_qa_*.jsonl")
    samples = sorted((json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda s: s["doc_id"])
    assert [s["filtered_resps"][0] for s in samples] == expected


@pytest.mark.slow
def test_cli_bad_model_args_exit_2_with_one_line(tmp_path):
    result = run_module("parallel_decoding.lm_eval", "--model", "parallel_decoding", "--model_args",
                        "decoder=nope", "--tasks", "pd_qa", "--include_path", str(write_tasks(tmp_path)))
    assert result.returncode == 2
    assert "decoder='nope'" in result.stderr and "Traceback" not in result.stderr
