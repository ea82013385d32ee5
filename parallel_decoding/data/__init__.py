"""Datasets as question groups: the shared schema, the group/question selection, and one loader per source."""

from parallel_decoding.data.grouping import select_groups
from parallel_decoding.data.schema import LoadedGroups, MalformedRowError, Question, QuestionGroup

__all__ = ["Question", "QuestionGroup", "LoadedGroups", "MalformedRowError", "select_groups"]
