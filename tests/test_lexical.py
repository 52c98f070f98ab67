"""jieba + bigram BM25: tokenisation, user dictionary, normalisation, persistence."""

from __future__ import annotations

import numpy as np

from assistant.lexical import ChineseTokenizer, LexicalIndex, cjk_bigrams, corpus_terms
from conftest import make_tiny_corpus


def test_question_words_and_punctuation_are_dropped():
    words = ChineseTokenizer(bigrams=False).tokenize_query("小微企业贷款能不能延期还本付息吗？怎么申请，有哪些条件")
    for dropped in ("吗", "能不能", "怎么", "哪些", "？", "，"):
        assert dropped not in words
    assert {"小微企业", "贷款", "延期还本付息", "申请", "条件"} <= set(words)


def test_domain_terms_stay_whole_and_keep_their_sub_words():
    words = ChineseTokenizer(bigrams=False).tokenize("暂免征收残疾人就业保障金，支持专精特新企业，落实稳岗返还")
    assert {"残疾人就业保障金", "保障金", "专精特新", "稳岗返还"} <= set(words)


def test_abbreviation_adds_the_full_term():
    words = ChineseTokenizer(bigrams=False).tokenize_query("残保金要交吗")
    assert "残保金" in words and "残疾人就业保障金" in words


def test_traditional_and_full_width_queries_tokenize_like_simplified():
    tokenizer = ChineseTokenizer()
    assert tokenizer.tokenize_query("小微企業貸款延期") == tokenizer.tokenize_query("小微企业贷款延期")
    assert "2021" in tokenizer.tokenize_query("２０２１年") and "2021" in tokenizer.tokenize("2021年")


def test_bigrams_bridge_different_word_cuts():
    assert cjk_bigrams("每2年评选") == ["每", "年评", "评选"]
    tokens = ChineseTokenizer().tokenize("市长质量奖每2年评选1届")
    assert "_评选" in tokens and "_质量" in tokens


def test_corpus_terms_come_from_titles_quotes_and_abbreviations():
    terms = corpus_terms(
        ["鹤壁市人民政府办公室关于开展资源产出率统计工作的通知"],
        ["贯彻落实《循环经济促进法》", "支持“专精特新”企业", "郑州市会展工作管理办公室（以下简称“市会展办”）"],
    )
    assert {"资源产出率统计工作", "循环经济促进法", "专精特新", "市会展办"} <= set(terms)


def test_bm25_ranks_the_clause_with_the_terms_first_and_survives_save_load(tmp_path):
    corpus = make_tiny_corpus()
    texts = [c.index_text for c in corpus.clauses]
    tokenizer = ChineseTokenizer(corpus_terms([d.title for d in corpus.documents], texts))
    index = LexicalIndex.build(texts, tokenizer)
    scores = index.scores("公司没招残疾人，残保金要交吗")
    assert "残疾人就业保障金" in corpus.clauses[int(np.argmax(scores))].text
    assert not index.scores("吗？").any()  # nothing but question words: no match at all

    index.save(tmp_path / "bm25")
    reloaded = LexicalIndex.load(tmp_path / "bm25", len(texts))
    np.testing.assert_allclose(reloaded.scores("公司没招残疾人，残保金要交吗"), scores)
    assert reloaded.tokenizer.user_terms == tokenizer.user_terms


def test_everyday_words_also_search_the_official_term():
    tokenizer = ChineseTokenizer(bigrams=False)
    assert {"薪酬"} <= set(tokenizer.words("国企高管一年拿多少工资"))
    assert {"企业", "开办"} <= set(tokenizer.words("在三门峡开公司要多久"))
    assert "地区生产总值" in "".join(tokenizer.words("今年GDP打算增长多少"))  # upper case typed, matched lower
    assert {"民营企业"} <= set(tokenizer.words("鹤壁民企被侵权找谁"))
    assert "薪酬" not in tokenizer.words("国企高管的待遇")  # only when the everyday word is there
    # short forms of policy language search the spelled-out term the notices mostly use
    assert "高级管理人员" in "".join(tokenizer.words("国企高管的待遇"))
    assert "环境影响评价" in "".join(tokenizer.words("安阳环评没批就开工能免罚吗"))
    assert "规模以上" in "".join(tokenizer.words("规上企业满负荷生产有奖励吗"))
    # spoken words for what the notices say in their own terms (头一回 -> 首次, 房东 -> 出租人)
    assert {"首次", "入规"} <= set(tokenizer.words("厂子今年头一回进规上了奖多少"))
    assert "出租人" in tokenizer.words("我是房东，给租户减了房租")
    assert "首次" not in tokenizer.words("厂子今年进规上了奖多少")


def test_index_ids_builds_what_bm25s_builds_to_the_byte():
    """The streamed BM25 build (straight into compressed columns) gives bm25s's own index: the same
    score, id and pointer arrays (dtypes too), vocabulary and scores, with tokens no text uses and
    texts joined on access."""
    from bm25s.tokenization import Tokenized

    from assistant.lexical import bm25s_model, index_ids

    rng = np.random.default_rng(7)
    vocab_size = 500
    ids = [(rng.zipf(1.3, size=int(rng.integers(1, 120))) % vocab_size).astype(np.int32) for _ in range(300)]
    vocab = {f"t{n}": n for n in range(vocab_size)}
    reference = bm25s_model()
    reference.index(Tokenized(ids=list(ids), vocab=dict(vocab)), show_progress=False)

    class Joined:  # documents made on access, as indexing joins clauses into documents
        def __len__(self):
            return len(ids) // 2

        def __getitem__(self, n):
            if n >= len(self):
                raise IndexError(n)
            return np.concatenate([ids[2 * n], ids[2 * n + 1]])

    joined_reference = bm25s_model()
    joined_reference.index(Tokenized(ids=list(Joined()), vocab=dict(vocab)), show_progress=False)
    for expected, source in ((reference, ids), (joined_reference, Joined())):
        built = bm25s_model()
        index_ids(built, source, dict(vocab))
        for part in ("data", "indices", "indptr"):
            assert built.scores[part].dtype == expected.scores[part].dtype
            assert built.scores[part].tobytes() == expected.scores[part].tobytes(), part
        assert built.scores["num_docs"] == expected.scores["num_docs"]
        assert built.vocab_dict == expected.vocab_dict and built.unique_token_ids_set == expected.unique_token_ids_set
        query = ["t1", "t3", "t40", "t499"]
        assert built.get_scores(query).tobytes() == expected.get_scores(query).tobytes()


def test_lexical_index_of_the_tiny_corpus_is_bm25s_own():
    from bm25s.tokenization import Tokenized

    from assistant.lexical import bm25s_model, token_ids

    tokenizer = ChineseTokenizer(corpus_terms(texts=[c.text for c in make_tiny_corpus().clauses]))
    texts = [c.index_text for c in make_tiny_corpus().clauses]
    ids, vocab = token_ids(tokenizer.tokenize(t) for t in texts)
    reference = bm25s_model()
    reference.index(Tokenized(ids=list(ids), vocab=dict(vocab)), show_progress=False)
    built = LexicalIndex.build(texts, tokenizer).bm25
    for part in ("data", "indices", "indptr"):
        assert built.scores[part].tobytes() == reference.scores[part].tobytes(), part
    assert built.vocab_dict == reference.vocab_dict
