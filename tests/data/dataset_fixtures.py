"""Small files in each dataset's own release (or hub) schema, written by the tests that read them.

Facts are invented, so no model has seen them; every file also holds malformed rows the loaders must skip and
count. ``write_fixture(name, dir)`` writes the file that ``dataset=<name> dataset.path=<file>`` reads."""

from __future__ import annotations

import json
from pathlib import Path

HOTPOT = [
    {"_id": "h1", "question": "Which town hosts the Quillmark kettle works?", "answer": "Dunmere", "type": "bridge",
     "level": "easy", "supporting_facts": [["Quillmark", 0], ["Dunmere", 1]],
     "context": [["Quillmark", ["Quillmark is a kettle maker.", " Its works stand in Dunmere."]],
                 ["Dunmere", ["Dunmere is a town.", " It lies on the Ost."]],
                 ["Kirwick", ["Kirwick is a village."]]]},
    {"_id": "h2", "question": "Who founded Ostkir Lanes?", "answer": "Vella Rane", "type": "bridge", "level": "medium",
     "supporting_facts": [["Ostkir Lanes", 0]],
     "context": [["Ostkir Lanes", ["Ostkir Lanes was founded by Vella Rane."]],
                 ["Rane family", ["The Rane family farmed barley."]]]},
    {"_id": "h3", "question": "Are Kirwick and Dunmere both towns?", "answer": "no", "type": "comparison",
     "level": "hard", "supporting_facts": [["Kirwick", 0], ["Dunmere", 0]],
     "context": [["Kirwick", ["Kirwick is a village."]], ["Dunmere", ["Dunmere is a town."]]]},
    {"_id": "h4", "question": "What river runs through Dunmere?", "answer": "the Ost", "type": "bridge",
     "level": "easy", "supporting_facts": [["Dunmere", 1]],
     "context": [["Dunmere", ["Dunmere is a town.", " It lies on the Ost."]]]},
    {"_id": "h5", "question": "", "answer": "x", "context": [["T", ["s"]]]},            # no question
    {"_id": "h6", "question": "No answer?", "answer": "", "context": [["T", ["s"]]]},   # no answer
    {"_id": "h7", "question": "No context?", "answer": "y", "context": []},             # no paragraphs
    "not a row",
]

QUAC = {"data": [
    {"title": "Vella Rane", "section_title": "Early life", "background": "Vella Rane is an invented brewer.",
     "paragraphs": [{
         "id": "C_rane_1",
         "context": "Vella Rane was born in Dunmere in 1871. She opened Ostkir Lanes in 1899. It closed in 1920. "
                    "CANNOTANSWER",
         "qas": [
             {"id": "C_rane_1_q#0", "question": "Where was she born?", "followup": "y", "yesno": "x",
              "answers": [{"text": "Dunmere", "answer_start": 23}, {"text": "in Dunmere", "answer_start": 20}],
              "orig_answer": {"text": "in Dunmere", "answer_start": 20}},
             {"id": "C_rane_1_q#1", "question": "Did she have siblings?", "followup": "n", "yesno": "x",
              "answers": [{"text": "CANNOTANSWER", "answer_start": 104}],
              "orig_answer": {"text": "CANNOTANSWER", "answer_start": 104}},
             {"id": "C_rane_1_q#2", "question": "What did she open?", "followup": "y", "yesno": "x",
              "answers": [{"text": "Ostkir Lanes", "answer_start": 43}],
              "orig_answer": {"text": "Ostkir Lanes", "answer_start": 43}},
             {"id": "C_rane_1_q#3", "question": "When did it close?", "followup": "n", "yesno": "x",
              "answers": [{"text": "CANNOTANSWER", "answer_start": 0}],
              "orig_answer": {"text": "in 1920", "answer_start": 70}},
         ]}]},
    {"title": "Dunmere", "section_title": "Geography", "background": "",
     "paragraphs": [{"id": "C_dun_1", "context": "Dunmere lies on the Ost. CANNOTANSWER",
                     "qas": [{"id": "C_dun_1_q#0", "question": "What river?",
                              "answers": [{"text": "the Ost", "answer_start": 16}],
                              "orig_answer": {"text": "the Ost", "answer_start": 16}},
                             {"id": "C_dun_1_q#1", "question": "", "answers": [{"text": "x", "answer_start": 0}]}]},
                    {"id": "C_dun_2", "context": "CANNOTANSWER", "qas": []}]},
    "not an article",
]}

CMB_CLIN = [
    {"id": 0, "title": "案例分析-腹外疝",
     "description": "现病史\n患者，男，65岁，右侧腹股沟区可复性肿块3年。\n体格检查\n站立时肿块明显。",
     "QA_pairs": [{"question": "请给出初步诊断。", "solution": "右侧腹股沟斜疝。"},
                  {"question": "请给出治疗原则。", "solution": "择期行无张力疝修补术，术前控制咳嗽便秘等腹压增高因素。"},
                  {"question": "", "solution": "空问题"}]},
    {"id": 1, "title": "案例分析-胆囊炎", "description": "现病史\n患者，女，40岁，右上腹痛伴发热1天。",
     "QA_pairs": [{"question": "最可能的诊断是什么？", "answer": "急性胆囊炎。"}]},
    {"id": 2, "title": "空病例", "description": "", "QA_pairs": [{"question": "q", "solution": "a"}]},
]


def _exam(stem, answer, options, subject="内科"):
    return {"exam_type": "医师考试", "exam_class": "执业医师", "exam_subject": subject, "question": stem,
            "answer": answer, "question_type": "单项选择题" if len(answer) == 1 else "多项选择题", "option": options}


CMB_EXAM_SUBDOMAIN = [
    {"medical_term": "高血压", "num_questions": 3, "questions": [
        _exam("高血压的诊断标准是？", "B", {"A": "120/80", "B": "140/90", "C": "160/100", "D": "180/110"}),
        _exam("一线降压药不包括？", "D", {"A": "利尿剂", "B": "ACEI", "C": "CCB", "D": "抗生素"}),
        _exam("高血压急症可见哪些表现？", "ACD", {"A": "头痛", "B": "脱发", "C": "视物模糊", "D": "胸痛"}),
    ]},
    {"medical_term": "糖尿病", "num_questions": 3, "questions": [
        _exam("空腹血糖诊断糖尿病的切点是？", "C", {"A": "5.6", "B": "6.1", "C": "7.0", "D": "11.1"}),
        _exam("二甲双胍的主要不良反应是？", "A", {"A": "胃肠道反应", "B": "低血糖", "C": "体重增加", "D": "水肿"}),
        _exam("答案不是选项的题", "Z", {"A": "甲", "B": "乙"}),  # malformed: answer not an option
    ]},
    {"medical_term": "", "num_questions": 1, "questions": []},  # malformed: no term
]

CMB_EXAM_CONTEXT = [
    {"background": "患者，男，58岁，突发胸痛2小时，心电图示V1-V4导联ST段抬高。", "num_questions": 2, "questions": [
        {"question": "最可能的诊断是？", "answer": "A", "option": {"A": "急性前壁心肌梗死", "B": "心绞痛", "C": "主动脉夹层"}},
        {"question": "首选的再灌注治疗是？", "answer": "B", "option": {"A": "口服阿司匹林", "B": "急诊PCI", "C": "观察"}},
    ]},
    {"background": "患儿，3岁，发热伴皮疹2天。", "num_questions": 2, "questions": [
        {"question": "需首先询问的是？", "answer": "C", "option": {"A": "饮食", "B": "睡眠", "C": "疫苗接种史"}},
        {"question": "没有选项的题", "answer": "A", "option": {}},  # malformed: no options
    ]},
]

_ARTICLE_1 = ("The lighthouse keeper of Kirwick, Orla Venn, kept a log of every ship for forty years. "
              "In the final entry she wrote that the sea had finally taken the old pier. ") * 3
_ARTICLE_2 = "Tomas Reed grew barley on a farm north of Dunmere and sold it to the Quillmark brewery. " * 3

QUALITY = [
    {"article_id": "61001", "set_unique_id": "61001_1", "title": "The Keeper", "author": "Anon", "article": _ARTICLE_1,
     "questions": [
         {"question": "Who kept the log?", "question_unique_id": "61001_q1",
          "options": ["Tomas Reed", "Orla Venn", "The captain", "Nobody"], "gold_label": 2, "writer_label": 2,
          "difficult": 0},
         {"question": "How long did she keep the log?", "question_unique_id": "61001_q2",
          "options": ["Four years", "Ten years", "Forty years", "A century"], "gold_label": 3, "writer_label": 3,
          "difficult": 1},
         {"question": "What did the sea take?", "question_unique_id": "61001_q3",
          "options": ["The lighthouse", "The old pier", "The log", "A ship"], "gold_label": 2, "difficult": 1},
         {"question": "Unlabelled (test split)?", "question_unique_id": "61001_q4",
          "options": ["a", "b", "c", "d"], "difficult": 0},
     ]},
    {"article_id": "61002", "set_unique_id": "61002_1", "title": "Barley", "article": _ARTICLE_2,
     "questions": [
         {"question": "What did Tomas grow?", "question_unique_id": "61002_q1",
          "options": ["Wheat", "Barley", "Hops", "Rye"], "gold_label": 2, "difficult": 0},
         {"question": "Who bought it?", "question_unique_id": "61002_q2",
          "options": ["The Quillmark brewery", "A baker", "The mill", "Orla Venn"], "gold_label": 1, "difficult": 0},
     ]},
]

DROP = {
    "nfl_1": {"passage": "The Kirwick Gulls beat the Dunmere Otters 27-13. Vella Rane kicked field goals of 23 and 41 "
                         "yards. The game was played on 17 August 1995.",
              "qa_pairs": [
                  {"query_id": "q1", "question": "How many points did the Gulls win by?",
                   "answer": {"number": "14", "date": {"day": "", "month": "", "year": ""}, "spans": []},
                   "validated_answers": [{"number": "14", "date": {"day": "", "month": "", "year": ""}, "spans": []}]},
                  {"query_id": "q2", "question": "Which field goals did Vella Rane kick?",
                   "answer": {"number": "", "date": {"day": "", "month": "", "year": ""},
                              "spans": ["23 yards", "41 yards"]},
                   "validated_answers": [{"number": "", "date": {"day": "", "month": "", "year": ""},
                                          "spans": ["23", "41"]}]},
                  {"query_id": "q3", "question": "When was the game played?",
                   "answer": {"number": "", "date": {"day": "17", "month": "August", "year": "1995"}, "spans": []},
                   "validated_answers": []},
                  {"query_id": "q4", "question": "Empty answer?",
                   "answer": {"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": []}},
              ], "wiki_url": ""},
    "history_2": {"passage": "In 1871 the town of Dunmere had 1,200 residents; by 1901 it had 3,450.",
                  "qa_pairs": [{"query_id": "q5", "question": "How many more residents did Dunmere have in 1901?",
                                "answer": {"number": "2250", "date": {"day": "", "month": "", "year": ""},
                                           "spans": []}}]},
    "broken": "not a passage",
}

TRIVIAQA = {"Version": 1.0, "Split": "dev", "Domain": "Wikipedia", "Data": [
    {"Question": "Which planet is known as the Red Planet?", "QuestionId": "tq1", "QuestionSource": "x",
     "Answer": {"Value": "Mars", "Aliases": ["Mars", "Planet Mars"], "NormalizedValue": "mars", "Type": "WikipediaEntity"}},
    {"Question": "Which planet has the largest rings?", "QuestionId": "tq2",
     "Answer": {"Value": "Saturn", "Aliases": ["Saturn"]}},
    {"Question": "What is the largest planet in the solar system?", "QuestionId": "tq3",
     "Answer": {"Value": "Jupiter", "Aliases": []}},
    {"Question": "Who wrote the novel Moby-Dick?", "QuestionId": "tq4",
     "Answer": {"Value": "Herman Melville", "Aliases": ["Melville"]}},
    {"Question": "Which author wrote Pride and Prejudice?", "QuestionId": "tq5",
     "Answer": {"Value": "Jane Austen", "Aliases": ["Austen"]}},
    {"Question": "Who is the author of the novel War and Peace?", "QuestionId": "tq6",
     "Answer": {"Value": "Leo Tolstoy", "Aliases": ["Tolstoy"]}},
    {"Question": "What is the chemical symbol for gold?", "QuestionId": "tq7", "Answer": {"Value": "Au", "Aliases": []}},
    {"Question": "In which year did the Titanic sink?", "QuestionId": "tq8", "Answer": {"Value": "1912", "Aliases": []}},
    {"Question": "", "QuestionId": "tq9", "Answer": {"Value": "x"}},                      # no question
    {"Question": "No answer?", "QuestionId": "tq10", "Answer": {"Value": "", "Aliases": []}},  # no answer
]}

# SQuAD v1.1's shape: four invented paragraphs of four questions (enough for a train / validation split by group).
_FACTS = [("Quillmark", "Vorlan Tess", "1874", "Dunmere"), ("Ostbridge", "Mira Calde", "1902", "Kirwick"),
          ("Harlow Press", "Jon Amsel", "1931", "Tressel"), ("Brightwater", "Ilse Varn", "1957", "Orrin")]
SQUAD = {"version": "1.1", "data": [
    {"title": name, "paragraphs": [{
        "context": f"{name} was founded in {year} by {founder} in {town}. {founder} ran {name} from {town}.",
        "qas": [{"id": f"{name[:3]}{i}", "question": question, "answers": [{"text": answer, "answer_start": 0}]}
                for i, (question, answer) in enumerate([
                    (f"When was {name} founded?", year), (f"Who founded {name}?", founder),
                    (f"Where was {name} founded?", town), (f"Who ran {name}?", founder)])]}]}
    for name, founder, year, town in _FACTS]}

FIXTURES = {
    "squad": ("dev-v1.1.json", SQUAD),
    "hotpot": ("hotpot_dev_distractor.json", HOTPOT),
    "quac": ("quac_val.json", QUAC),
    "cmb_clin": ("CMB-Clin-qa.json", CMB_CLIN),
    "cmb_exam": ("cmb_exam_subdomain.json", CMB_EXAM_SUBDOMAIN),
    "cmb_exam_context": ("cmb_exam_context.json", CMB_EXAM_CONTEXT),
    "quality": ("quality.dev.jsonl", QUALITY),
    "drop": ("drop_dataset_dev.json", DROP),
    "triviaqa": ("triviaqa_dev.json", TRIVIAQA),
}


def write_fixture(name: str, directory: Path) -> Path:
    filename, content = FIXTURES[name]
    path = Path(directory) / filename
    if filename.endswith(".jsonl"):
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in content), encoding="utf-8")
    else:
        path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path
