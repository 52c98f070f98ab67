"""Score retrieval and composed answers on a Q&A set: ``python -m assistant eval``.

    qa        the Q&A file: format, checks against the corpus, loading
    metrics   coverage of evidence, hit@k, MRR, hit within N characters, per-question results
    report    metrics per mode, the summary table, report.md, the hit@k plot
    run       running every question through every mode (hybrid = the Assistant's own ask)
    calibration  abstention signals per question, for choosing thresholds and fitting models

>>> from assistant.evaluation import load_qa, covers
>>> covers("第四条 项目由 市住建局 负责审批。", "地源热泵项目由市住建局负责审批")
True
"""

from assistant.evaluation.metrics import (
    CHAR_BUDGETS,
    COVERAGE_THRESHOLD,
    RANK_CUTOFFS,
    EvidenceMatcher,
    PassageScore,
    QuestionResult,
    covers,
    longest_common_substring,
    score_passages,
    summarize,
    visible_prefixes,
)
from assistant.evaluation.qa import LOW_OVERLAP, QA_KEYS, QA_TYPES, QAItem, check_qa_file, load_qa, question_overlap
from assistant.evaluation.run import ALL_MODES, RETRIEVER_MODES, evaluate, fetch_hits, make_runners, run_eval

__all__ = [
    "ALL_MODES", "CHAR_BUDGETS", "COVERAGE_THRESHOLD", "LOW_OVERLAP", "QA_KEYS", "QA_TYPES", "RANK_CUTOFFS",
    "RETRIEVER_MODES", "EvidenceMatcher", "PassageScore", "QAItem", "QuestionResult", "check_qa_file", "covers",
    "evaluate", "fetch_hits", "load_qa", "longest_common_substring", "make_runners", "question_overlap", "run_eval",
    "score_passages", "summarize", "visible_prefixes",
]
