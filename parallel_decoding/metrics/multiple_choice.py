"""Multiple-choice accuracy: which option letter(s) did the model pick?

The extractor reads a letter only where it stands alone — never out of a word, so "Based on the passage, C"
is C and "Based on ..." alone is no answer (the reference's first-capital-A-to-F rule read B from "Based").
It tries, in order: an explicit marker ("answer is C", "Answer: (C)", "答案：C", "选C"), a letter opening the
answer ("C. Paris", "(C)"), the first stand-alone letter run elsewhere ("ACD", "A, C and D" for
multiple-answer questions), and finally the text of exactly one option quoted in the answer. A capital "A"
followed by a lower-case word is the English article, not an option.
"""

from __future__ import annotations

import re

from parallel_decoding.prompting.thinking import strip_thinking

LETTERS = "ABCDEFGHIJ"
_RUN = r"[A-J](?:\s*(?:,|、|，|/|&|\band\b|和|及)?\s*[A-J])*"  # one letter or a list of letters
_ALONE = r"(?<![A-Za-z])({run})(?![A-Za-z])"
_MARKER = re.compile(
    r"(?:(?i:answer|option|choice)s?(?:\s+(?i:is|are|would\s+be|should\s+be))?|答案(?:是|为|应为|应该是)?|"
    r"正确(?:答案|选项)?(?:是|为)?|应选|选择|选项|选)\s*[:：]?\s*[(（\[【]?\s*" + _ALONE.format(run=_RUN))
_LEADING = re.compile(r"^[\s*_>#\-]*[(（\[【]?\s*" + _ALONE.format(run=_RUN) + r"\s*(?:[)）\]】.．:：、,，;；\s]|$)")
_ANYWHERE = re.compile(_ALONE.format(run=_RUN))
_ARTICLE_A = re.compile(r"A\s+[a-z]")


def _letters(run: str, valid: str) -> str:
    found = {c for c in run if c in LETTERS}
    return "".join(sorted(found)) if found and found <= set(valid) else ""


def _is_article(text: str, match: re.Match) -> bool:
    """A lone "A" followed by a lower-case word ("A patient ...") — but "A and C" is a list of letters."""
    return match.group(1) == "A" and bool(_ARTICLE_A.match(text, match.start(1)))


def extract_choice(text: str, options: dict[str, str] | None = None, valid: str = "ABCDEF") -> str:
    """The chosen letters, sorted ("C", "ACD"), or "" when the text names no option."""
    if options:
        valid = "".join(sorted(options))
    # Everything before the last </think> is thinking: an option weighed there is never read as the choice.
    text = strip_thinking(text or "", keep_between_blocks=False).strip()
    for pattern in (_MARKER, _LEADING):
        for match in pattern.finditer(text):
            if not _is_article(text, match) and (chosen := _letters(match.group(1), valid)):
                return chosen
    for match in _ANYWHERE.finditer(text):
        if _is_article(text, match):
            continue
        if chosen := _letters(match.group(1), valid):
            return chosen
    if options:
        folded = text.casefold()
        quoted = [letter for letter, option in options.items() if option.strip() and option.casefold() in folded]
        if len(quoted) == 1:
            return quoted[0]
    return ""


def gold_letters(gold: str) -> str:
    return "".join(sorted({c for c in gold.upper() if c in LETTERS}))


def choice_scores(prediction: str, golds: str | list[str], format_valid: bool,
                  options: dict[str, str] | None = None) -> dict[str, float]:
    """``{accuracy, strict}``: the extracted letters equal a gold's letters (strict: and the format was kept)."""
    chosen = extract_choice(prediction, options)
    alternatives = [golds] if isinstance(golds, str) else list(golds)
    correct = float(bool(chosen) and any(chosen == gold_letters(g) for g in alternatives))
    return {"accuracy": correct, "strict": correct if format_valid else 0.0}
