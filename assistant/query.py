"""What a question is about, read off its wording: the city it names and the kind of fact it asks for.

Shared by retrieval (a clause that carries the asked-for kind of fact, or comes from the city
asked about, ranks higher) and by answer composition (the sentence carrying the fact is quoted
first; another city's local notice is never the answer).

>>> [kind.name for kind in fact_kinds("地源热泵项目谁来审批")]
['unit']
>>> [kind.name for kind in question_kinds("往淇河里排畜禽粪便罚多少")]
['amount', 'penalty', 'count']
>>> cities_named(normalize_query("郑州小微企业担保有支持吗"))
{'郑州'}
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.text import normalize_query
from assistant.types import Clause


# --- Cities ---------------------------------------------------------------------------------------

# Cities whose notices the corpus may hold. A question naming one of them is not answered from
# another city's local notice (「郑州…」 must not get 鹤壁's rule as its answer); notices whose
# title names no city (national, provincial) apply everywhere.
HENAN_CITIES = (
    "郑州", "开封", "洛阳", "平顶山", "安阳", "鹤壁", "新乡", "焦作", "濮阳", "许昌", "漯河",
    "三门峡", "南阳", "商丘", "信阳", "周口", "驻马店", "济源",
)


def cities_named(text: str) -> set[str]:
    """Henan cities named in a text (short names): cities_named("郑州市粮食…") == {"郑州"}."""
    return {city for city in HENAN_CITIES if city in text}


def clause_fits_cities(clause: Clause, cities: set[str]) -> bool:
    """False when the clause is from a local notice of another city than the ones asked about.

    Provincial and national notices (city 河南省 or unknown) fit every city, even when their title
    names an issuer in some city (中国人民银行郑州中心支行); so does a notice in another city's
    compilation whose title names no city (a national measure reprinted there).
    """
    if not cities or not clause.city or not cities_named(clause.city):
        return True
    if cities_named(clause.city) & cities:
        return True
    in_title = cities_named(clause.doc_title)
    return not in_title or bool(in_title & cities)


# --- What kind of fact a question asks for ---------------------------------------------------

@dataclass(frozen=True)
class FactKind:
    name: str
    question: re.Pattern[str]  # matches a question asking for this fact
    sentence: re.Pattern[str]  # matches a sentence carrying it


_CN_NUM = "[0-9０-９.．一二三四五六七八九十百千万亿两]"
FACT_KINDS = (
    FactKind(
        "amount",
        re.compile(
            r"多少|金额|额度|几万|几千|[0-9一二三四五六七八九十]?元|比例|标准是|补贴标准|补助标准|上限|最高|最多|百分之|"
            r"(?:什么|哪些|啥|多大)(?:奖励|补贴|补助|奖补|资助|支持)|(?:奖励|补贴|补助|奖补|罚款|罚|收费|租金)(?:多少|几|怎么算)"
        ),
        re.compile(rf"{_CN_NUM}+\s*(?:万元|亿元|千元|元|%|％|倍|个百分点)|百分之|{_CN_NUM}+\s*万(?!人)"),
    ),
    FactKind(
        "date",
        re.compile(r"什么时候|何时|期限|日前|截止|多久|多长时间|几号|哪天|时间|日期|之前|以前|年底|有效期|施行|实施"),
        re.compile(
            rf"{_CN_NUM}+\s*年\s*{_CN_NUM}*\s*月?|{_CN_NUM}+\s*月\s*{_CN_NUM}+\s*日|日前|之前|以前|前完成|"
            rf"{_CN_NUM}+\s*个?(?:工作日|日|天|个月)|年底|月底|截止|期限|施行|起实施|有效期"
        ),
    ),
    FactKind(
        "unit",
        re.compile(r"谁|哪个部门|哪些部门|什么部门|哪个单位|哪些单位|哪家|责任单位|牵头单位|主管部门|审批|负责|管理部门|找谁|归谁"),
        # "负责制" (a responsibility *system*) names no one, so it does not count.
        re.compile(r"责任单位|牵头单位|由.{1,40}?负责|(?<!分工)负责(?!制)|主管部门|审批|审核|批准|牵头"),
    ),
    FactKind(
        "condition",
        # Not every yes/no question (「能延期吗」) asks for a condition: only explicit ones do.
        re.compile(r"条件|哪些企业|什么企业|什么样的|符合|资格|要求|够不够|适用|对象|范围|门槛"),
        re.compile(r"条件|符合|具备|满足|应当|须|对象|范围|适用|以上|以下|不低于|不超过|达到"),
    ),
)


def fact_kinds(question: str) -> list[FactKind]:
    """The kinds of fact a question asks for, in the order they are checked (amount, date, unit, condition)."""
    normalized = normalize_query(question)
    return [kind for kind in FACT_KINDS if kind.question.search(normalized)]


# Further kinds of request that retrieval weighs (a clause matching the kind's ``sentence`` pattern
# gains INTENT_WEIGHT in hybrid search; see assistant/retriever.py for the measurements). They are
# kept apart from FACT_KINDS because the composer's fact-first rule was calibrated on those four.
INTENT_KINDS = (
    FactKind(
        "penalty",
        re.compile(r"罚|处罚|处分|会怎样|怎么处理|被抓|后果|追究|骗"),
        re.compile(r"违反|罚款|处罚|责令|追究|处分|吊销|取消|追回|收回"),
    ),
    FactKind(
        "procedure",
        re.compile(r"程序|流程|步骤|怎么申请|如何申请|怎么办理|怎么报|去哪|哪里申请|手续|材料|第一步"),
        re.compile(r"程序|流程|申请|申报|提交|报送|受理|审核|材料"),
    ),
    FactKind(
        "target",
        re.compile(r"目标|打算|计划|力争|预期|要达到|做到|压到|增长多少"),
        re.compile(r"目标|力争|预期|达到|控制在|以内|增长"),
    ),
    FactKind(
        "count",  # 几家 / 多少个 / 多少年 / 多少分 …: a number with any measure word answers it
        re.compile(r"几|多少(?!钱|万|元)|多大|规模"),
        # not an article or item number (第二十六条, 第3项): a whole number, not one cut after 第
        re.compile(rf"(?<![第0-9０-９.．一二三四五六七八九十百千万亿两]){_CN_NUM}+\s*多?(?:个|家|人|名|只|支|项|种|年|分|天|日|所|户|亩|次|届|批|条|辆|台|吨|万|亿|%|％|倍)"),
    ),
    FactKind(
        "effective",  # when a measure takes effect or runs out
        re.compile(r"施行|生效|实施|管到|有效期|能用几年|用多久|到期"),
        re.compile(r"自.{0,25}(?:起|之日)(?:施行|实施|执行|生效)|有效期|截至|截止|至\s*\d{4}\s*年"),
    ),
    FactKind(
        "qualify",  # what it takes to be eligible, asked without the word 条件
        re.compile(r"才能|才算|能申报|可以申报|能不能申|够格|得达到|要考|门槛|资格|需要拿|要拿|许可"),
        re.compile(r"条件|具备|满足|不低于|以上|达到|取得"),
    ),
    FactKind(
        "benefit",
        re.compile(r"好处|优惠|激励|有什么用|享受"),
        re.compile(r"优先|激励|奖励|便利|绿色通道|享受|给予"),
    ),
)


def question_kinds(question: str) -> list[FactKind]:
    """Every kind of request a question makes, FACT_KINDS first, then INTENT_KINDS (for retrieval)."""
    normalized = normalize_query(question)
    return [kind for kind in (*FACT_KINDS, *INTENT_KINDS) if kind.question.search(normalized)]
