"""Hand-made clauses copied from the bundled corpus, for composer tests that need no index."""

from __future__ import annotations

from assistant.types import Clause, Hit

HEBI_FILE = "000_ed0d53ce87970edb.txt"
ZZ_FILE = "002_009ccee41da37f96.txt"
HENAN_FILE = "004_260f99d2aa0f9dae.txt"
HEBI_TITLE = "鹤壁市地源热泵系统建设应用管理暂行办法"


def clause(clause_id, text, *, doc_id, source, title, label, line_start, doc_number=None, city=None, path=None):
    lines = text.count("\n")
    return Clause(
        clause_id=clause_id,
        doc_id=doc_id,
        source=source,
        doc_title=title,
        section_path=tuple(path or (label,)),
        label=label,
        text=text,
        index_text=f"{title} {label} {text}",
        line_start=line_start,
        line_end=line_start + lines,
        doc_number=doc_number,
        city=city,
    )


HEBI_ART4 = clause(
    "000#2:4",
    "第四条 鹤壁市住房和城乡建设局是本市地源热泵系统建设和运行管理的行政主管部门。\n"
    "市供热燃气管理办公室具体负责地源热泵系统建设应用的监督管理工作。\n"
    "市规划、国土资源、水利、电力、环保、质量技术监督等部门按照各自职责，配合做好地源热泵系统建设应用管理工作。",
    doc_id="000#2", source=HEBI_FILE, title=HEBI_TITLE, label="第四条", line_start=54,
    doc_number="鹤政办〔2025〕9号", city="鹤壁市", path=("第一章 总则", "第四条"),
)
HEBI_ART6 = clause(
    "000#2:6",
    "第六条 对采用地源热泵系统的项目，系统用电和水资源费享受市政府有关优惠政策。",
    doc_id="000#2", source=HEBI_FILE, title=HEBI_TITLE, label="第六条", line_start=58,
    doc_number="鹤政办〔2025〕9号", city="鹤壁市", path=("第一章 总则", "第六条"),
)
HEBI_ART20 = clause(
    "000#2:20",
    "第二十条 取得集中供热特许经营权必须具备以下条件：\n（一）依法注册的企业法人；\n（二）有相应的注册资本金和设施、设备；\n"
    "（三）有良好的银行资信、财务状况及相应的偿债能力；",
    doc_id="000#2", source=HEBI_FILE, title=HEBI_TITLE, label="第二十条", line_start=78,
    doc_number="鹤政办〔2025〕9号", city="鹤壁市", path=("第三章 应用管理", "第二十条"),
)
ZZ_GRAIN = clause(
    "002#1:1.2",
    "（二）明确县（市、区）政府粮食安全责任\n粮食安全市长责任制是市政府统一领导下\n"
    "的粮食安全县（市、区）长责任制和部门分工负责制。县（市、区）政府必须切实承担保障本地粮食安全的主体责任，"
    "全面加强粮食生产、储备、加工和流通能力建设。\n责任单位：各县（市、区）人民政府",
    doc_id="002#1", source=ZZ_FILE, title="郑州市人民政府关于全面落实粮食安全省长责任制的实施意见",
    label="一、（二）", line_start=19, doc_number="郑政〔2016〕24号", city="郑州市",
)
HENAN_FULL_LOAD = clause(
    "004#7:2",
    "二、鼓励企业满负荷生产、挖潜增效。对因受疫情、春节等因素影响停产停工的规模以上工业企业，在2022年2月15日前实现满负荷生产的，"
    "给予10万元的财政奖励；对2022年第一季度保持连续满负荷生产且实现主营业务收入同比增长10%以上的规模以上工业企业，给予20万元的财政奖励，"
    "奖补资金由省级和属地财政按照1:1比例分担。（责任单位：省财政厅、工业和信息化厅，各省辖市政府、济源示范区管委会）",
    doc_id="004#7", source=HENAN_FILE, title="河南省人民政府关于印发河南省助企纾困稳定经济增长若干政策措施的通知",
    label="二、", line_start=924, city="河南省",
)


def hits(*clauses, ranks=None):
    """Hits in the given order with decreasing scores, ranked by both modes."""
    return [
        Hit(c, score=1.0 / (i + 1), ranks=dict(ranks) if ranks else {"bm25": i + 1, "dense": i + 1})
        for i, c in enumerate(clauses)
    ]


ALL_CLAUSES = (HEBI_ART4, HEBI_ART6, HEBI_ART20, ZZ_GRAIN, HENAN_FULL_LOAD)


class FakeRetriever:
    """Stands in for assistant.retriever.Retriever: bigram overlap over the fixture clauses."""

    def __init__(self, clauses=ALL_CLAUSES):
        from assistant.query import default_tokenizer

        self.clauses = list(clauses)
        self.documents = []
        self.calls = []
        self.tokenizer = default_tokenizer()

    def clauses_of(self, doc_id):
        return [c for c in self.clauses if c.doc_id == doc_id]

    def search(self, query, k=10, mode="hybrid", filters=None):
        self.calls.append((query, filters))
        from assistant.query import QueryProfile

        wanted = QueryProfile.of(query).bigrams
        scored = []
        for c in self.clauses:
            if filters and "source" in filters and c.source not in filters["source"]:
                continue
            if filters and "city" in filters and c.city not in filters["city"]:
                continue
            text = c.doc_title + c.text
            overlap = sum(1 for b in wanted if b in text)
            if overlap:
                scored.append((overlap, c))
        scored.sort(key=lambda item: -item[0])
        from assistant.types import SearchResult

        return SearchResult([Hit(c, float(s), {"bm25": i + 1, "dense": i + 1}) for i, (s, c) in enumerate(scored[:k])])
