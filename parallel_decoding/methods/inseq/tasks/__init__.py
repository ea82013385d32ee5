"""The in-sequence tasks: deterministic generators with gold answers (retrieval, multidoc_qa) or without
(planning), loaders for the reference's JSONL formats, and the scorer (``score_example``)."""

from parallel_decoding.methods.inseq.tasks.base import (TaskExample, answered_in_format, contains_answer, final_answer,
                                                       score_example)
from parallel_decoding.methods.inseq.tasks.multidoc_qa import generate_multidoc_qa, load_multidoc_qa
from parallel_decoding.methods.inseq.tasks.planning import generate_planning, load_planning
from parallel_decoding.methods.inseq.tasks.retrieval import generate_retrieval, load_retrieval

ANSWER_LABELS = {"retrieval": "name", "multidoc_qa": "Answer", "planning": "Answer"}

__all__ = ["ANSWER_LABELS", "TaskExample", "answered_in_format", "contains_answer", "final_answer",
           "generate_multidoc_qa", "generate_planning", "generate_retrieval", "load_multidoc_qa", "load_planning", "load_retrieval",
           "score_example"]
