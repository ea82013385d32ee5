"""Strategies on the tiny model against independent references: the padded batch decodes exactly what each
question decodes alone, greedy results do not depend on batch size, and prompts carry the context where the
strategy says they do."""

from __future__ import annotations

import pytest

from parallel_decoding.backends.base import GenerationSettings

from parallel_decoding.backends.hf import HFBackend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.synthetic import load_synthetic
from parallel_decoding.dependencies.heuristic import HeuristicGenerator
from parallel_decoding.dependencies.selection import SelectionPolicy
from parallel_decoding.dependencies.strategy import CollabStrategy
from parallel_decoding.methods.crossbatch.strategy import CrossBatchStrategy
from parallel_decoding.methods.llada.strategy import LLaDAStrategy
from parallel_decoding.metrics.efficiency import PrefixTrie
from parallel_decoding.strategies.all_in_one import AllInOneStrategy
from parallel_decoding.strategies.batch import BatchStrategy
from parallel_decoding.strategies.independent import IndependentStrategy
from parallel_decoding.prompting.prompts import sequential_turn
from parallel_decoding.strategies.sequential import SequentialStrategy


@pytest.fixture(scope="module")
def groups():
    return load_synthetic(context_count=3, min_questions=3, max_questions=6, seed=5).groups


@pytest.fixture(scope="module")
def backend(tiny_bundle):
    return HFBackend(tiny_bundle, GenerationSettings(max_new_tokens=10))


def _raw(outcome):
    return [p.raw_output for p in outcome.predictions]


def test_batch_equals_independent_token_for_token(groups, backend):
    for group in groups:
        independent = IndependentStrategy("independent").run(group, backend)
        batched = BatchStrategy("batch", batch_size=8).run(group, backend)
        assert _raw(batched) == _raw(independent)
        assert batched.efficiency.generated_tokens == independent.efficiency.generated_tokens


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_greedy_results_do_not_depend_on_batch_size(groups, backend, batch_size):
    for group in groups:
        reference = BatchStrategy("batch", batch_size=8).run(group, backend)
        other = BatchStrategy("batch", batch_size=batch_size).run(group, backend)
        assert _raw(other) == _raw(reference)
        assert other.efficiency.generate_calls == -(-len(group.questions) // batch_size)


def test_sequential_sends_the_context_once_and_dedup_counts_the_growing_chat_once(groups, backend):
    group = groups[0]
    first = sequential_turn(group, group.questions[0], first=True, previous=None)
    later = sequential_turn(group, group.questions[1], first=False, previous=group.questions[0])
    assert group.contexts[0] in first and group.contexts[0] not in later
    outcome = SequentialStrategy("sequential").run(group, backend)
    stats = outcome.efficiency
    assert stats.generate_calls == len(group.questions)
    # Each turn's prompt extends the previous one, so only the last prompt's tokens are distinct.
    assert stats.dedup_prompt_tokens < stats.prompt_tokens


def test_all_in_one_marks_unanswered_questions_invalid(groups, backend):
    outcome = AllInOneStrategy("all_in_one", tokens_per_question=2).run(groups[0], backend)
    assert outcome.efficiency.generate_calls == 1
    for p in outcome.predictions:  # the random model never writes "Q1: <answer>...": nothing is answered
        assert not p.answered and p.prediction == "" and not p.format_valid


def test_prefix_trie_counts_shared_prefixes_once():
    trie = PrefixTrie()
    trie.add([1, 2, 3, 4])
    trie.add([1, 2, 3, 5, 6])
    trie.add([1, 2])
    assert trie.size == 6


@pytest.mark.parametrize("build,message", [
    (lambda: BatchStrategy("batch", batch_size=0), "batch_size must be >= 1, got 0"),
    (lambda: CollabStrategy("collab_heuristic", HeuristicGenerator(), batch_size=0), "batch_size must be >= 1 or null"),
    (lambda: SelectionPolicy(max_dependencies=-1), "max_dependencies must be >= 0 or null, got -1"),
    (lambda: CrossBatchStrategy("collab_hidden", max_rows=0), "max_rows must be >= 1 or null, got 0"),
    (lambda: LLaDAStrategy("llada", batch_size=0), "batch_size must be >= 1, got 0"),
])
def test_an_option_out_of_range_is_a_config_error_in_every_strategy(build, message):
    """A user's mistake (one line, exit 2 at the entry point), the same in every strategy."""
    with pytest.raises(ConfigError, match=message):
        build()
