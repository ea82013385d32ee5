"""In-sequence parallel decoding of model-planned branches: outline -> parallel branches in one sequence ->
conclusion (``decoder.py``), the stage-1 outline constraint (``outline.py``), tasks (``tasks/``), the
command-line runner (``run.py``), and ``method=inseq`` (``module.py``: training on in-sequence layouts,
``training.py``: its examples)."""

from parallel_decoding.methods.inseq.decoder import (InSequenceDecoder, InSequenceSettings, NormalResult,
                                                     ParallelResult)
from parallel_decoding.methods.inseq.module import InSequenceMethod
from parallel_decoding.methods.inseq.outline import Outline, OutlineConstraint, parse_outline
from parallel_decoding.methods.inseq.training import InSequenceCollator, InSequenceExample

__all__ = ["InSequenceCollator", "InSequenceDecoder", "InSequenceExample", "InSequenceMethod", "InSequenceSettings",
           "NormalResult", "Outline", "OutlineConstraint", "ParallelResult", "parse_outline"]
