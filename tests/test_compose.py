"""Composer behaviour on hand-made clauses copied from the corpus (no index needed)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from assistant.compose import ExtractiveComposer, compose
from assistant.generative import OpenAICompatibleComposer
from assistant.query import fact_kinds, query_terms
from assistant.render import NOT_FOUND
from assistant.sentences import split_sentences
from assistant.verify import QuoteVerificationError, verify_answer
from assistant.types import Answer, Quote
from compose_fixtures import (
    ALL_CLAUSES,
    HEBI_ART4,
    HEBI_ART6,
    HEBI_ART20,
    HEBI_FILE,
    HEBI_TITLE,
    HENAN_FULL_LOAD,
    ZZ_GRAIN,
    hits,
)


def test_sentences_are_exact_spans_with_their_source_lines():
    sentences = split_sentences(HEBI_ART4)
    assert [s.text[:8] for s in sentences] == ["第四条 鹤壁市住", "市供热燃气管理办", "市规划、国土资源"]
    for s in sentences:
        assert HEBI_ART4.text[s.start : s.end] == s.text
    assert [s.line for s in sentences] == [54, 55, 56]


def test_sentences_split_at_chinese_stops_inside_a_line():
    sentences = split_sentences(HENAN_FULL_LOAD)
    assert len(sentences) == 4  # 。 ； 。 then the （责任单位：…） note
    assert sentences[-1].text.startswith("（责任单位：")
    assert all(s.line == 924 for s in sentences)


def test_query_terms_drop_question_words():
    terms = query_terms("地源热泵系统由哪个部门负责管理？")
    assert "哪个" not in "".join(terms) and "由" not in terms
    assert any("热泵" in t for t in terms)


def test_fact_kinds():
    assert [k.name for k in fact_kinds("满负荷生产奖励有多少钱")] == ["amount"]
    assert "date" in [k.name for k in fact_kinds("专精特新企业什么时候更新信息")]
    assert "unit" in [k.name for k in fact_kinds("地源热泵项目谁来审批")]
    assert "condition" in [k.name for k in fact_kinds("特许经营权要符合什么条件")]
    assert fact_kinds("地源热泵系统是什么") == []


def test_answer_quotes_the_answering_sentence_with_citation():
    answer = compose("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4, HEBI_ART6, ZZ_GRAIN))
    assert not answer.abstained
    first = answer.quotes[0]
    assert "住房和城乡建设局" in first.text
    assert first.citation == f"{HEBI_TITLE}（鹤政办〔2025〕9号） › 第四条 — {HEBI_FILE}:54"
    assert f"「{first.text}」" in answer.text
    assert f"{HEBI_TITLE}（鹤政办〔2025〕9号）" in answer.text
    assert 2 <= len(answer.quotes) <= 4
    # the second sentence of the article sits on the next source line
    second = next(q for q in answer.quotes if q.text.startswith("市供热燃气"))
    assert second.line_start == 55 and second.citation.endswith(":55")


def test_quotes_are_grouped_by_document():
    answer = compose("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4, ZZ_GRAIN, HEBI_ART6))
    docs = [q.source for q in answer.quotes]
    assert docs == sorted(docs, key=docs.index)  # one run per document
    assert answer.text.count(f"《{HEBI_TITLE}") == 1


def test_responsible_unit_sentence_comes_first():
    answer = compose("满负荷生产奖励由哪个部门负责", hits(HENAN_FULL_LOAD, HEBI_ART6))
    assert answer.quotes[0].text.startswith("（责任单位：省财政厅")
    answer = compose("郑州县级政府粮食安全的责任单位是谁", hits(ZZ_GRAIN, HEBI_ART4))
    assert answer.quotes[0].text == "责任单位：各县（市、区）人民政府"


def test_amount_sentence_comes_first():
    answer = compose("满负荷生产能拿多少奖励", hits(HENAN_FULL_LOAD))
    assert "万元" in answer.quotes[0].text
    assert "责任单位" not in answer.quotes[0].text


def test_condition_question_quotes_the_list_of_conditions():
    answer = compose("取得供热特许经营权需要什么条件", hits(HEBI_ART20, HEBI_ART4))
    first = answer.quotes[0]
    assert first.text.startswith("第二十条") and "（一）依法注册的企业法人；" in first.text
    assert (first.line_start, first.line_end) == (78, 81)
    assert first.text in HEBI_ART20.text


def test_unrelated_question_abstains_and_lists_possibly_related():
    answer = compose("北京市公积金贷款额度是多少", hits(HEBI_ART6, ZZ_GRAIN))
    assert answer.abstained and answer.quotes == []
    assert answer.text.startswith(NOT_FOUND)
    assert "可能相关" in answer.text and "第六条" in answer.text
    assert "「" not in answer.text  # nothing presented as a quote


def test_no_hits_abstains():
    answer = compose("地源热泵系统由哪个部门负责管理", [])
    assert answer.abstained and answer.text.startswith(NOT_FOUND)


def test_answer_json_shape():
    data = compose("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4)).to_dict()
    json.dumps(data, ensure_ascii=False)
    assert set(data) >= {"answer", "abstained", "quotes", "hits", "notice"}
    assert {"text", "clause_id", "citation"} <= set(data["quotes"][0])


# --- the verbatim check --------------------------------------------------------------------


class AlteringComposer:
    """A deliberately broken composer: 'tidies up' the policy text it quotes."""

    name = "altering"

    def compose(self, request):
        answer = ExtractiveComposer().compose(request)
        altered = [replace(q, text=q.text.replace("住房和城乡建设局", "住建局")) for q in answer.quotes]
        return Answer(request.question, answer.text.replace("住房和城乡建设局", "住建局"), False, altered, request.hits)


def test_broken_composer_is_caught():
    with pytest.raises(QuoteVerificationError):
        compose("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4), composer=AlteringComposer())


def test_verify_rejects_altered_text_shown_in_brackets_even_without_quote_objects():
    good = compose("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4))
    bad = Answer(good.question, good.text.replace("行政主管部门", "主管部门"), False, good.quotes, good.hits)
    with pytest.raises(QuoteVerificationError):
        verify_answer(bad, good.hits)


def test_verify_rejects_quote_of_a_clause_not_retrieved():
    good = compose("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4))
    stray = Quote("第六条", HEBI_ART6.clause_id, "x", HEBI_TITLE, "第六条", HEBI_FILE, 58, 58)
    with pytest.raises(QuoteVerificationError):
        verify_answer(Answer(good.question, good.text, False, [stray], good.hits), good.hits)


def test_verify_accepts_every_extractive_answer_of_the_fixtures():
    for question in ("地源热泵系统由哪个部门负责管理", "满负荷生产奖励多少钱", "特许经营权要什么条件", "粮食安全谁负责"):
        hs = hits(HEBI_ART4, HEBI_ART20, HENAN_FULL_LOAD, ZZ_GRAIN, HEBI_ART6)
        answer = compose(question, hs)
        verify_answer(answer, hs)
        for quote in answer.quotes:
            assert quote.text in {h.clause.clause_id: h.clause for h in hs}[quote.clause_id].text


# --- generative composer stub ----------------------------------------------------------------


def fake_endpoint(reply: dict):
    calls = []

    def post(url, payload):
        calls.append((url, payload))
        return {"choices": [{"message": {"content": "```json\n" + json.dumps(reply, ensure_ascii=False) + "\n```"}}]}

    return post, calls


def test_generative_composer_faithful_reply_passes_verification():
    post, calls = fake_endpoint({"summary": "由「市住建局」主管。", "quotes": [{"clause": 1, "text": "市供热燃气管理办公室具体负责地源热泵系统建设应用的监督管理工作。"}]})
    composer = OpenAICompatibleComposer("http://127.0.0.1:9/v1", "test-model", post=post)
    answer = compose("地源热泵谁管", hits(HEBI_ART4), composer=composer)
    assert calls[0][0] == "http://127.0.0.1:9/v1/chat/completions"
    assert "第四条" in calls[0][1]["messages"][1]["content"]
    assert answer.quotes[0].line_start == 55
    assert "「市住建局」" not in answer.text  # the model's own words are never shown as a quote


def test_generative_composer_paraphrased_quote_is_rejected():
    post, _ = fake_endpoint({"summary": "", "quotes": [{"clause": 1, "text": "市住建局是地源热泵的主管部门。"}]})
    composer = OpenAICompatibleComposer("http://127.0.0.1:9/v1", "test-model", post=post)
    with pytest.raises(QuoteVerificationError):
        compose("地源热泵谁管", hits(HEBI_ART4), composer=composer)


def test_generative_composer_without_quotes_abstains():
    post, _ = fake_endpoint({"summary": "无", "quotes": []})
    answer = compose("地源热泵谁管", hits(HEBI_ART4), composer=OpenAICompatibleComposer("http://x/v1", "m", post=post))
    assert answer.abstained and answer.quotes == []


# --- abstention rule and city fit ------------------------------------------------------------------


def test_other_citys_local_notice_is_not_quoted_for_the_city_asked_about():
    answer = compose("郑州地源热泵系统由哪个部门负责管理", hits(HEBI_ART4, HEBI_ART6))
    assert answer.abstained and answer.quotes == []
    assert "其他城市" in answer.text and "郑州" in answer.text
    # provincial notices apply everywhere, and the asked city's own notice is read further down
    answer = compose("郑州满负荷生产奖励多少钱", hits(HEBI_ART4, HENAN_FULL_LOAD))
    assert not answer.abstained and answer.quotes[0].clause_id == HENAN_FULL_LOAD.clause_id


def test_dense_similarity_decides_only_when_evidence_is_weak():
    from assistant.abstention import AbstentionRule, AbstentionSignals

    rule = AbstentionRule()
    weak = AbstentionSignals(coverage=0.45, relevance=0.4, top_score=1.0, modes_agree=True, dense_similarity=rule.min_dense_similarity - 0.01)
    assert rule.should_abstain(weak)
    assert not rule.should_abstain(AbstentionSignals(0.45, 0.4, 1.0, True, rule.min_dense_similarity + 0.01))
    assert not rule.should_abstain(AbstentionSignals(0.9, 0.8, 1.0, True, 0.1))  # strong word evidence wins
    assert rule.should_abstain(AbstentionSignals(0.2, 0.2, 1.0, True, 0.9))  # too little of the question found
    strong = compose("地源热泵系统由哪个部门负责管理", hits(HEBI_ART4), dense_similarity=0.2)
    assert not strong.abstained


def test_everyday_words_count_as_the_official_ones():
    from assistant.query import QueryProfile

    profile = QueryProfile.of("公司没招残疾人，残保金要交吗")
    assert profile.coverage("用人单位安排残疾人就业未达到规定比例的缴纳残疾人就业保障金") > 0.9


# --- exact source lines ---------------------------------------------------------------------------------


def test_locator_finds_the_source_lines_across_blank_and_wrapped_lines():
    from assistant.verify import LineLocator
    from assistant.types import Document
    from compose_fixtures import clause

    source_lines = (
        "（三）落实相关部门粮食安全职责",
        "",
        "市有关部门细化职责分工，建立健全配套措施，形成工作合力。",
        "",
        "责任单位：市粮食局、市农委、市发展改革委、",
        "",
        "中国农业发展银行河南省分行营业部（列第一位的为牵头单位，下同）",
    )
    document = Document("002#1", ZZ_GRAIN.source, "郑州市…实施意见", 28, 34, source_lines, doc_number="郑政〔2016〕24号")
    text = (
        "（三）落实相关部门粮食安全职责\n市有关部门细化职责分工，建立健全配套措施，形成工作合力。\n"
        "责任单位：市粮食局、市农委、市发展改革委、中国农业发展银行河南省分行营业部（列第一位的为牵头单位，下同）"
    )
    grain3 = clause("002#1:1.3", text, doc_id="002#1", source=ZZ_GRAIN.source, title="郑州市…实施意见",
                    label="一、（三）", line_start=28, doc_number="郑政〔2016〕24号")
    grain3 = replace(grain3, line_end=34)
    hs = hits(grain3)
    without = compose("粮食安全的责任单位是谁", hs)
    located = compose("粮食安全的责任单位是谁", hs, locator=LineLocator([document]))
    first = located.quotes[0]
    assert first.text.startswith("责任单位：")
    assert (first.line_start, first.line_end) == (32, 34)  # counting line breaks alone says 30
    assert without.quotes[0].line_start == 30
    assert first.citation.endswith(f"{ZZ_GRAIN.source}:32-34") and f"{ZZ_GRAIN.source}:32-34" in located.text
    assert LineLocator([]).lines(grain3, first.text) is None


# --- key-term abstention (rare topic words missing from the top clauses) ------------------------------


def test_key_terms_keep_topic_words_and_drop_colloquial_fragments():
    from assistant.query import QueryProfile

    assert "产假" in QueryProfile.of("三门峡女职工产假一共有多少天").key_terms
    assert QueryProfile.of("郑州积分落户要攒够多少分").key_terms == ["郑州", "积分", "落户"]
    assert not {"几家", "时候"} & set(QueryProfile.of("郑州有几家炼钢企业，什么时候关停").key_terms)


def test_term_rarity_ranks_a_word_the_corpus_lacks_above_a_common_one():
    from assistant.abstention import TermRarity

    rarity = TermRarity(ALL_CLAUSES)
    assert rarity.document_frequency("地源热泵") == 3 and rarity.document_frequency("高温津贴") == 0
    assert rarity.idf("高温津贴") > rarity.idf("责任单位") > rarity.idf("地源热泵")
    assert rarity.document_frequency("残保金") == rarity.document_frequency("残疾人就业保障金")  # full form counts


# The first hit came from word overlap only (absent from the dense candidates) and the dense
# similarity (0.45) is too high for the similarity test alone: the key-term test decides.
WORD_ONLY_RANKS = {"hybrid": 1, "bm25": 1, "dense": None}


def test_question_whose_rare_key_term_is_absent_from_the_hits_abstains():
    from assistant.abstention import TermRarity

    question = "鹤壁地源热泵系统用户能领高温津贴吗"  # 高温津贴: in no clause
    retrieved = hits(HEBI_ART6, HEBI_ART4, ranks=WORD_ONLY_RANKS)
    without_rarity = compose(question, retrieved, dense_similarity=0.45)
    assert not without_rarity.abstained  # coverage alone (地源热泵系统 found) would quote 第六条
    answer = compose(question, retrieved, dense_similarity=0.45, term_rarity=TermRarity(ALL_CLAUSES))
    assert answer.abstained and answer.quotes == []
    assert answer.text.startswith(NOT_FOUND) and "第六条" in answer.text  # shown as possibly related


def test_question_whose_key_terms_are_all_in_the_hits_is_answered():
    from assistant.abstention import TermRarity

    answer = compose(
        "鹤壁地源热泵系统用电有什么优惠政策",
        hits(HEBI_ART6, HEBI_ART4, ranks=WORD_ONLY_RANKS),
        dense_similarity=0.45,
        term_rarity=TermRarity(ALL_CLAUSES),
    )
    assert not answer.abstained and answer.quotes[0].clause_id == HEBI_ART6.clause_id


def test_key_term_test_needs_the_dense_encoder_to_disagree_too():
    from assistant.abstention import AbstentionRule, AbstentionSignals

    rule = AbstentionRule()

    def abstains(key_coverage, dense_rank, similarity):
        return rule.should_abstain(AbstentionSignals(0.6, 0.5, 1.0, True, similarity, key_coverage, dense_rank))

    low = rule.min_key_term_coverage - 0.1
    below = rule.key_term_dense_similarity - 0.01
    assert abstains(low, float("inf"), below)
    assert abstains(low, rule.dense_rank_disagreement, below)
    assert not abstains(low, 1, below)  # dense agrees on the top hit
    assert not abstains(low, float("inf"), rule.key_term_dense_similarity + 0.01)  # a close clause exists
    assert not abstains(rule.min_key_term_coverage + 0.1, float("inf"), 0.44)  # the topic words are there
    assert not abstains(None, float("inf"), 0.44)  # no corpus rarity: test skipped
    assert not abstains(low, None, 0.44)  # no dense ranks: test skipped


def test_key_term_coverage_counts_terms_found_together_in_one_clause():
    from assistant.abstention import TermRarity, key_term_coverage
    from assistant.query import QueryProfile

    rarity = TermRarity(ALL_CLAUSES)
    # 用电 is in 第六条 only, 主管部门 in 第四条 only: pooled they would both be "found"
    question = "鹤壁地源热泵用电归哪个主管部门"
    profile = QueryProfile.of(question)
    apart = key_term_coverage(profile, hits(HEBI_ART6, HEBI_ART4), rarity)
    alone = key_term_coverage(profile, hits(HEBI_ART6), rarity)
    assert apart == pytest.approx(max(alone, key_term_coverage(profile, hits(HEBI_ART4), rarity)))
    assert apart < 1.0
    assert key_term_coverage(QueryProfile.of("鹤壁地源热泵系统用电有什么优惠政策"), hits(HEBI_ART6, HEBI_ART4), rarity) == pytest.approx(1.0)


def test_asked_for_amount_is_fetched_from_a_lower_clause_when_the_top_one_lacks_it():
    from compose_fixtures import clause

    # the top clause shares the question's words but names no amount; the second one carries it
    policy = clause(
        "004#7:1",
        "一、支持规模以上工业企业满负荷生产。各地要落实规模以上工业企业满负荷生产财政奖励政策，帮助企业稳定生产。",
        doc_id="004#7", source=HENAN_FULL_LOAD.source, title=HENAN_FULL_LOAD.doc_title, label="一、", line_start=920,
        city="河南省",
    )
    answer = compose("满负荷生产财政奖励政策帮企业稳定生产，奖多少", hits(policy, HENAN_FULL_LOAD))
    assert not answer.abstained
    assert answer.quotes[0].clause_id == HENAN_FULL_LOAD.clause_id and "万元" in answer.quotes[0].text
