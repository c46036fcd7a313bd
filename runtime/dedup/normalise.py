"""Normalised match keys for duplicate checks (查重): pure functions, no database.

Each dedup `method` (METADATA.md "Dedup rule") is three small things:

* `normalise(method, value)` — the canonical text two spellings of the same thing share
  (北京字节跳动科技有限公司 and 字节跳动（北京）科技有限公司 both give 字节跳动科技);
* `match_keys(method, norm)` — the keys stored in `mc_dedup_keys` and looked up on a
  check. Exact-like methods have one key (the normalised value). Similarity methods add
  *blocking keys*: the one-character-deletion neighbourhood of the first characters of
  the name (SymSpell's trick), so any single typo, insertion or deletion still shares a
  key with the original while a key stays selective at a million rows;
* `similarity(method, a, b)` — the score (0..1) of two normalised values, computed only
  for the few candidates the keys fetched (rapidfuzz: Indel ratio and token-sort ratio
  for names, Jaro-Winkler over pinyin for people).

Keeping these pure makes them testable in a table, and lets the benchmark measure
precision and recall without a database.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import lru_cache
from typing import Any, Callable

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler

#: Methods whose keys are the whole normalised value: a match is key equality.
EXACT_METHODS = frozenset({"exact", "iexact", "email", "phone", "date"})
#: Methods matched by blocking keys plus a similarity score.
SIMILAR_METHODS = frozenset({"company_name", "person_name", "fuzzy"})
METHODS = EXACT_METHODS | SIMILAR_METHODS
#: Score a similarity method needs when its rule gives no `threshold`.
DEFAULT_THRESHOLDS = {"company_name": 0.92, "person_name": 0.9, "fuzzy": 0.85}
#: Stored keys are cut to this many characters (the column's size); norms to NORM_MAX.
KEY_MAX = 190
NORM_MAX = 500
#: How many leading characters the deletion neighbourhood covers. A typo further on
#: leaves that prefix intact, so the undeleted prefix is then the shared key.
BLOCK_PREFIX = 8
#: Below this length deletion keys would be short and shared by many names (and a one-
#: character change in so short a name scores under any sensible threshold anyway).
MIN_DELETION_LEN = 6
#: A company's distinctive words (its brand) are keyed over this many characters.
BRAND_PREFIX = 16
#: Chinese brands shorter than this get no deletion keys (see _brand_keys).
MIN_CJK_DELETION_LEN = 6
#: Values whose normalisation and keys are remembered: a batch of 500 rows uses a few
#: thousand, over and over (lock, check, store); more would only hold memory.
CACHED_VALUES = 8192


# ------------------------------------------------------------------ shared text helpers

def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).casefold().strip()
    return text or None


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _has_cjk(text: str) -> bool:
    return any(_is_cjk(ch) for ch in text)


def _words(text: str) -> list[str]:
    """Words of a text: dots and apostrophes vanish (Co. → co, L.L.C. → llc), any other
    punctuation or symbol separates words."""
    text = re.sub(r"[.'’`]", "", text)
    return [w for w in re.split(r"[^\w]+|_", text) if w]


# ------------------------------------------------------------------ exact-like methods

def _exact(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _iexact(value: Any) -> str | None:
    text = _text(value)
    return "".join(text.split()) or None if text else None


def _email(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    text = "".join(text.split())
    if text.startswith("mailto:"):
        text = text[len("mailto:"):]
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain:
        return None
    return f"{local}@{domain.rstrip('.')}"


_EXTENSION = re.compile(r"(转|分机|ext\.?|extension|x|#).*$")
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def _phone(value: Any) -> str | None:
    """Digits only, China's +86 / 0086 removed, a landline keeping its 0 trunk prefix.

    +86 138 1234 5678, 0086-13812345678, 8613812345678 and 138-1234-5678 all give
    13812345678; +86 10 6552 9988 and (010) 6552-9988 both give 01065529988. Another
    country's number keeps its code behind a '+' so it never equals a Chinese one.
    """
    text = _text(value)
    if not text:
        return None
    text = _EXTENSION.sub("", text)
    international = text.lstrip().startswith("+")
    digits = "".join(ch for ch in text if ch.isdigit())
    if digits.startswith("00"):
        digits, international = digits[2:], True
    chinese = False
    if international:
        if digits.startswith("86"):
            digits, chinese = digits[2:], True
        elif digits:
            return f"+{digits}" if len(digits) >= 5 else None
    elif len(digits) == 13 and digits.startswith("86") and _CN_MOBILE.match(digits[2:]):
        digits = digits[2:]
    if chinese and digits and not digits.startswith("0") and not _CN_MOBILE.match(digits):
        digits = "0" + digits  # +86 21 ... is the Shanghai landline 021 ...
    return digits if len(digits) >= 5 else None


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日", "%d/%m/%Y", "%m/%d/%Y")


def _date(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = _text(value)
    if not text:
        return None
    text = text.replace(" ", "")
    try:
        return dt.datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return text


# ------------------------------------------------------------------ company names

#: Provinces, municipalities and larger cities, as company names carry them (北京 / 北京市 /
#: (北京) / Beijing). A leading or bracketed place is registration noise, not the name.
_PLACES_ZH = (
    "北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 "
    "四川 贵州 云南 陕西 甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门 "
    "深圳 广州 杭州 南京 苏州 无锡 宁波 温州 成都 武汉 西安 长沙 郑州 济南 青岛 大连 沈阳 长春 哈尔滨 "
    "厦门 福州 合肥 南昌 南宁 昆明 贵阳 太原 石家庄 呼和浩特 兰州 银川 西宁 乌鲁木齐 拉萨 海口 三亚 "
    "东莞 佛山 珠海 中山 惠州 常州 南通 徐州 扬州 绍兴 嘉兴 金华 台州 烟台 潍坊 唐山 保定 洛阳 "
    "芜湖 泉州 漳州 汕头 江门 湛江 株洲 宜昌 襄阳 绵阳 柳州 桂林 昆山 义乌 中国"
).split()
_PLACES_EN = (
    "beijing tianjin shanghai chongqing hebei shanxi liaoning jilin heilongjiang jiangsu zhejiang anhui "
    "fujian jiangxi shandong henan hubei hunan guangdong hainan sichuan guizhou yunnan shaanxi gansu "
    "qinghai taiwan guangxi tibet ningxia xinjiang hong kong hongkong macau macao shenzhen guangzhou "
    "hangzhou nanjing suzhou wuxi ningbo wenzhou chengdu wuhan xian xi'an changsha zhengzhou jinan "
    "qingdao dalian shenyang xiamen fuzhou hefei kunming dongguan foshan zhuhai china prc"
).split()
_PLACE_SUFFIXES = ("省", "市", "自治区", "特别行政区", "区", "县")
_PLACE_ALT = "|".join(sorted((re.escape(p) for p in _PLACES_ZH), key=len, reverse=True))
_LEADING_PLACE = re.compile(rf"^(?:{_PLACE_ALT})(?:省|市|自治区|特别行政区)?")
_BRACKETS = re.compile(r"[(\[{【〔](.*?)[)\]}】〕]")

#: Chinese legal forms, longest first (stripped from the end, repeatedly).
_LEGAL_ZH = tuple(sorted((
    "股份有限公司", "有限责任公司", "有限公司", "集团有限公司", "集团股份有限公司", "控股有限公司",
    "集团公司", "总公司", "公司", "集团", "控股", "股份公司", "合伙企业", "有限合伙", "普通合伙",
    "个人独资企业", "工作室", "商行", "企业",
), key=len, reverse=True))
#: English legal-form words (after punctuation is gone), stripped from the end repeatedly.
_LEGAL_EN = frozenset((
    "co company corp corporation inc incorporated ltd limited llc llp lp plc gmbh ag kg ohg sa sas sarl "
    "srl spa bv nv oy ab as aps pte pty sdn bhd kk group holdings holding intl international the "
    "companylimited coltd"
).split())


def _strip_places(text: str) -> str:
    def bracket(m: re.Match[str]) -> str:
        inner = m.group(1).strip()
        bare = inner
        for suffix in _PLACE_SUFFIXES:
            if bare.endswith(suffix) and len(bare) > len(suffix):
                bare = bare[: -len(suffix)]
                break
        words = _words(inner)
        if bare in _PLACES_ZH or (words and all(w in _PLACES_EN for w in words)):
            return " "
        return f" {inner} "

    text = _BRACKETS.sub(bracket, text)
    for _ in range(3):  # 中国广东省深圳市XX: up to three leading places
        m = _LEADING_PLACE.match(text)
        if not m or len(text) - m.end() < 2:
            break
        text = text[m.end():]
    return text


def _company(value: Any) -> str | None:
    """A company's core name: legal forms, places, punctuation, width and case removed.

    北京字节跳动科技有限公司, 字节跳动(北京)科技有限公司 and 北京字节跳动科技有限公司 with
    full-width brackets → 字节跳动科技; ACME Co., Ltd. and Acme Company Limited → acme.
    """
    text = _text(value)
    if not text:
        return None
    text = _strip_places(text)
    if _has_cjk(text):
        compact = "".join(_words(text))
        for _ in range(3):
            for form in _LEGAL_ZH:
                if compact.endswith(form) and len(compact) > len(form) + 1:
                    compact = compact[: -len(form)]
                    break
            else:
                break
        compact = _strip_places(compact)
        return compact or None
    words = _words(text)
    while len(words) > 1 and words[-1] in _LEGAL_EN:
        words.pop()
    while len(words) > 1 and words[0] in ("the",):
        words.pop(0)
    while len(words) > 1 and words[0] in _PLACES_EN:
        words.pop(0)
    return " ".join(words) or None


# ------------------------------------------------------------------ person names

_COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 南宫 西门 百里".split())
#: Surnames whose reading differs from the character's everyday one (单 is Shan, not Dan).
_SURNAME_READINGS = {"单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "区": "ou", "查": "zha",
                     "朴": "piao", "覃": "qin", "尉": "yu", "繁": "po", "缪": "miao", "盖": "ge",
                     "翟": "zhai", "乐": "yue", "长": "chang", "种": "chong", "万": "wan", "秘": "bi"}


def _person(value: Any) -> str | None:
    """A person's name as pinyin words in the order written: 张三丰 → "zhang sanfeng",
    Zhang San-Feng → "zhang sanfeng", Sanfeng Zhang → "sanfeng zhang"."""
    text = _text(value)
    if not text:
        return None
    cjk = "".join(ch for ch in text if _is_cjk(ch))
    if cjk:
        split = 2 if cjk[:2] in _COMPOUND_SURNAMES and len(cjk) > 2 else 1
        family = "".join(_SURNAME_READINGS.get(cjk, "") or _SURNAME_READINGS.get(ch) or lazy_pinyin(ch)[0]
                         for ch in cjk[:split]) if split == 1 else "".join(lazy_pinyin(cjk[:split]))
        given = "".join(lazy_pinyin(cjk[split:]))
        return f"{family} {given}".strip()
    text = text.replace("-", "")
    words = _words(text)
    return " ".join(words) or None


def _person_orders(norm: str) -> tuple[str, ...]:
    """The name compacted as written and reversed (family name first or last)."""
    words = norm.split()
    orders = {"".join(words), "".join(reversed(words))}
    return tuple(sorted(orders))


# ------------------------------------------------------------------ plain fuzzy text

def _fuzzy(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    return " ".join(_words(text)) or None


NORMALISERS: dict[str, Callable[[Any], str | None]] = {
    "exact": _exact, "iexact": _iexact, "email": _email, "phone": _phone, "date": _date,
    "company_name": _company, "person_name": _person, "fuzzy": _fuzzy,
}


def normalise(method: str, value: Any) -> str | None:
    """The canonical form of `value` under `method`; None when there is nothing to match.

    Remembered for recent values: a write normalises the same value to lock, check and
    store its keys, and an import does so for thousands of rows (pypinyin and the place
    and legal-form stripping are most of a check's time)."""
    try:
        return _normalise_cached(method, type(value), value)
    except TypeError:  # an unhashable value (a location, a list): computed afresh
        return _normalise(method, value)


def _normalise(method: str, value: Any) -> str | None:
    norm = NORMALISERS[method](value)
    return norm[:NORM_MAX] if norm else None


@lru_cache(maxsize=CACHED_VALUES)
def _normalise_cached(method: str, kind: type, value: Any) -> str | None:
    """`kind` keeps 1, 1.0 and True apart, which the cache would otherwise take as one key."""
    return _normalise(method, value)


# ------------------------------------------------------------------ keys and scores

def _sorted_compact(norm: str) -> str:
    """Words sorted and joined: swapped words (Global Acme / Acme Global) share it."""
    return "".join(sorted(norm.split()))


def _deletion_keys(text: str, prefix: int = BLOCK_PREFIX) -> set[str]:
    base = text[:prefix]
    keys = {base}
    if len(base) >= MIN_DELETION_LEN:
        keys.update(base[:i] + base[i + 1:] for i in range(len(base)))
    return keys


@lru_cache(maxsize=CACHED_VALUES)
def match_keys(method: str, norm: str | None) -> frozenset[str]:
    """The keys stored for (and looked up with) a normalised value (remembered, as
    `normalise`: a similarity method's deletion keys are a few dozen string slices)."""
    return frozenset(_match_keys(method, norm))


def _match_keys(method: str, norm: str | None) -> set[str]:
    if not norm:
        return set()
    if method in EXACT_METHODS:
        return {norm[:KEY_MAX]}
    if method == "person_name":
        keys: set[str] = set()
        for order in _person_orders(norm):
            keys |= _deletion_keys(order)
        return keys
    if method == "company_name":
        return _brand_keys(_distinctive(norm))
    return _deletion_keys(_sorted_compact(norm))


def _brand_keys(brand: str) -> set[str]:
    """A company's blocking keys come from its brand, not its trade words: keyed on the
    first characters of "Bridge Software Zenmar" every Bridge Software would share a key,
    while "bridgezenmar" and its one-letter deletions are nearly unique. A Chinese brand
    gets deletions only when long: 龙天 and 龙天兴 are two firms, not a typo."""
    base = brand[:BRAND_PREFIX]
    if _has_cjk(base) and len(base) < MIN_CJK_DELETION_LEN:
        return {base}
    return _deletion_keys(base, BRAND_PREFIX)


#: Words that say what a company does, not which company it is (科技, Trading…): two names
#: that differ only in their brand must not look alike because their long trade words agree.
_GENERIC_ZH = tuple(sorted(set(
    "科技 信息 技术 网络 软件 电子 机械 制造 精密 仪器 新材料 材料 投资 管理 融资 租赁 资产 教育 培训 医疗 器械 "
    "生物 医药 置业 房地产 开发 物业 商贸 贸易 百货 连锁 超市 物流 供应链 货运 代理 能源 新能源 电力 工程 咨询 "
    "企业 人力资源 服务 实业 发展 国际 控股 集团 文化 传媒 广告 建设 建筑 装饰 设计 食品 农业 环保 化工 汽车 "
    "通信 智能 数据 网络科技 电子商务 进出口".split()), key=len, reverse=True))
_GENERIC_EN = frozenset((
    "technologies technology tech software systems system digital manufacturing industries industrial capital "
    "logistics trading consulting energy healthcare pharma pharmaceuticals materials foods food retail properties "
    "property education networks network solutions services service global international holdings group "
    "enterprises partners ventures investments investment management media labs"
).split())


@lru_cache(maxsize=65536)
def _distinctive(norm: str) -> str:
    """The part of a company's core name that tells it apart: trade words removed."""
    if _has_cjk(norm):
        core = norm
        changed = True
        while changed:
            changed = False
            for word in _GENERIC_ZH:
                if core.endswith(word) and len(core) - len(word) >= 2:
                    core, changed = core[: -len(word)], True
                    break
        return core
    words = [w for w in norm.split() if not _generic_en(w)]
    return "".join(sorted(words or norm.split()))


def _generic_en(word: str) -> bool:
    """A trade word, or one typing slip away from a long one (Tradng, Globall)."""
    if word in _GENERIC_EN:
        return True
    return len(word) >= 5 and any(abs(len(g) - len(word)) <= 1 and len(g) >= 6 and OSA.distance(word, g) <= 1
                                  for g in _GENERIC_EN)


def _company_similarity(a: str, b: str) -> float:
    """The whole names' likeness, capped by their brands' (the distinctive words): a
    Chinese brand must be the same characters (龙天 and 龙天兴 are two firms), a Latin one
    may carry one typing slip when it is five letters or longer (Northwind ≈ Nrothwind)."""
    full = _text_similarity(a, b)
    if full < 0.5:
        return full  # far apart already; the brand can only lower it
    ba, bb = _distinctive(a), _distinctive(b)
    if ba == bb:
        return full
    if not _has_cjk(ba + bb) and min(len(ba), len(bb)) >= 5 and OSA.distance(ba, bb) <= 1:
        return full
    return min(full, fuzz.ratio(ba, bb) / 100.0)


def _text_similarity(a: str, b: str) -> float:
    if " " not in a and " " not in b:
        return fuzz.ratio(a, b) / 100.0
    return max(fuzz.ratio(a, b), fuzz.token_sort_ratio(a, b), fuzz.ratio(_sorted_compact(a), _sorted_compact(b))) / 100.0


def similarity(method: str, a: str | None, b: str | None) -> float:
    """How alike two normalised values are, 0..1 (1 for equal)."""
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    if method in EXACT_METHODS:
        return 0.0
    if method == "person_name":
        return max(JaroWinkler.normalized_similarity(x, y)
                   for x in _person_orders(a) for y in _person_orders(b))
    if method == "company_name":
        return _company_similarity(a, b)
    return _text_similarity(a, b)


def threshold_of(method: str, threshold: float | None) -> float:
    if method in EXACT_METHODS:
        return 1.0
    return threshold if threshold is not None else DEFAULT_THRESHOLDS[method]
