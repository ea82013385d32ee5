"""The format instruction appended to every in-sequence task prompt (yuyijiong/parallel-decoding-in-one-sequence,
arXiv 2503.20533), in our own words: independent steps are written ``####Title:`` ... and closed with
``####%%%%``; a step whose content is ``......`` is a title-only outline entry. The same prompt goes to normal
decoding (a fair comparison)."""

from __future__ import annotations

FORMAT_INSTRUCTION_EN = (
    "Answer format: when your reasoning has several parallel steps that do not depend on each other (for example "
    "checking several documents or candidates one by one, or planning several independent parts), write each such "
    "step as '####' followed by a short title and an English colon ':', then the step itself. After the last "
    "parallel step write '####%%%%' and then continue with the rest of your answer.\n"
    "Example:\n"
    "Question: [profiles of A, B and C] Who fits the job best?\n"
    "Answer: I will look at each profile.\n####Profile of A:......\n####Profile of B:......\n####Profile of C:......\n"
    "####%%%%So A fits the job best.\n"
    "A step shown as '......' only stands for its content. Only parallel steps start with '####'; general "
    "reasoning does not. Do not leave out a necessary step."
)

FORMAT_INSTRUCTION_ZH = (
    "回答格式：如果推理中有若干相互独立、可以并行的步骤（例如逐一分析多个文档或候选、分别规划几个独立部分），"
    "每个这样的步骤以'####'开头，接着写简短的标题和英文冒号':'，然后写该步骤的内容。最后一个并行步骤之后输出'####%%%%'，"
    "再继续后面的回答。\n"
    "例如：\n问题：[甲、乙、丙的简历] 谁最适合这个职位？\n"
    "回答：我逐一分析每份简历。\n####甲的简历:......\n####乙的简历:......\n####丙的简历:......\n####%%%%因此甲最适合。\n"
    "'......'只代表该步骤的内容。只有并行步骤以'####'开头，一般推理不要加。不要遗漏必要的步骤。"
)


def with_format_instruction(prompt: str, language: str = "en") -> str:
    return prompt + "\n\n" + (FORMAT_INSTRUCTION_ZH if language == "zh" else FORMAT_INSTRUCTION_EN)
