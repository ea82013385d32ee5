"""The strategy interface: a question group in, one prediction per question plus cost out.

Adding a strategy = one module with a ``Strategy`` subclass + one ``conf/strategy/<name>.yaml`` whose
``_target_`` names it. Metrics, results files and reports only see ``GroupOutcome``.

A strategy that answers with trained weights finds them itself: its YAML passes ``checkpoint``
(``checkpoints.<name>``), ``use_published`` (the run's ``auto_checkpoints``) and ``published``
(``${published:<method>,<variant>}``: where that training run publishes them), and its constructor calls
``Strategy.checkpoint_or_published``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from parallel_decoding.backends.base import Backend
from parallel_decoding.config import ConfigError
from parallel_decoding.data.schema import QuestionGroup
from parallel_decoding.metrics.efficiency import EfficiencyStats
from parallel_decoding.prompting.extraction import extract_answer


@dataclass
class QuestionPrediction:
    question_id: str
    prediction: str  # the extracted answer that metrics score
    raw_output: str  # what the model wrote
    format_valid: bool  # the answer came in the requested format (strict metric)
    answered: bool = True  # False when the model gave no answer for this question at all (all_in_one)


@dataclass
class GroupOutcome:
    predictions: list[QuestionPrediction]
    efficiency: EfficiencyStats
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-specific figures (layers, DAG quality, ...)


class StrategyUnavailable(ConfigError):
    """This strategy cannot run here (its checkpoint is missing, ...): skipped with this notice."""


class Strategy(ABC):
    # True for strategies that read hidden states or pass custom attention masks (shared-prefix engines, trained
    # methods): only backends running the model in-process (hf) serve them; vllm/api runs refuse them up front.
    requires_model_internals: bool = False
    # The published checkpoint auto_checkpoints found for it: build_strategies records it in checkpoints.<name>.
    found_checkpoint: Path | None = None

    def __init__(self, name: str) -> None:
        self.name = name

    def checkpoint_or_published(self, checkpoint: str | None, use_published: bool,
                                published: Mapping[str, Any] | None) -> str | None:
        """``checkpoint`` when given; else, with ``use_published`` (``auto_checkpoints=true``), the one ``train``
        published (a directory with a ``config.json``), or ``StrategyUnavailable`` naming the run that publishes it."""
        if checkpoint or not use_published or not published or published.get("path") is None:
            return checkpoint
        path, variant = Path(published["path"]), published["variant"]
        if not (path / "config.json").is_file():
            raise StrategyUnavailable(
                f"strategy {self.name} skipped: no {variant} checkpoint at {path} (train it with python -m "
                f"parallel_decoding.train method={published['method']} method.variant={variant} "
                f"model={published['model']} dataset={published['dataset']}, or pass checkpoints.{self.name}=<dir>)")
        self.found_checkpoint = path
        return str(path)

    def run(self, group: QuestionGroup, backend: Backend) -> GroupOutcome:
        with backend.measure() as stats:
            predictions = self.answer_group(group, backend)
        by_id = {p.question_id: p for p in predictions}
        missing = [q.id for q in group.questions if q.id not in by_id]
        if missing:
            raise RuntimeError(f"strategy {self.name} returned no prediction for {missing}")
        return GroupOutcome(predictions=[by_id[q.id] for q in group.questions], efficiency=stats)

    @abstractmethod
    def answer_group(self, group: QuestionGroup, backend: Backend) -> list[QuestionPrediction]:
        """Answer every question of the group through ``backend`` (so its cost is measured)."""


def prediction_from_output(question_id: str, raw: str) -> QuestionPrediction:
    extracted = extract_answer(raw)
    return QuestionPrediction(question_id, extracted.text, raw, extracted.format_valid)
