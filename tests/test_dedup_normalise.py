"""Dedup normalisation, keys and scores (runtime/dedup/normalise.py): tables of Chinese and
English spellings that must meet — and near-misses that must not."""
from __future__ import annotations

import pytest

from metacrm.runtime.dedup.normalise import match_keys, normalise, similarity, threshold_of


def _same(method: str, a: str, b: str) -> bool:
    """What the engine does: the values share a key and score over the method's threshold."""
    na, nb = normalise(method, a), normalise(method, b)
    return bool(match_keys(method, na) & match_keys(method, nb)) and \
        similarity(method, na, nb) >= threshold_of(method, None)


NORMALISED = [
    ("exact", "  ACME  ", "ACME"),
    ("exact", "", None),
    ("iexact", "Ａｃｍｅ  Trading", "acmetrading"),          # full-width, case, spaces
    ("iexact", "北京 字节", "北京字节"),
    ("email", " Zhang.San@Example.COM ", "zhang.san@example.com"),
    ("email", "mailto:li@ｅｘａｍｐｌｅ.cn", "li@example.cn"),
    ("email", "not-an-email", None),
    ("phone", "+86 138 1234 5678", "13812345678"),
    ("phone", "0086-138-1234-5678", "13812345678"),
    ("phone", "8613812345678", "13812345678"),
    ("phone", "１３８ １２３４ ５６７８", "13812345678"),          # full-width digits
    ("phone", "(010) 6552-9988", "01065529988"),
    ("phone", "+86 10 6552 9988", "01065529988"),
    ("phone", "010-65529988 转 123", "01065529988"),
    ("phone", "+1 (415) 555-0100", "+14155550100"),
    ("phone", "12", None),
    ("date", "2024-01-05", "2024-01-05"),
    ("date", "2024/1/5", "2024-01-05"),
    ("date", "2024年1月5日", "2024-01-05"),
    ("date", "2024-01-05T10:00:00", "2024-01-05"),
    ("company_name", "北京字节跳动科技有限公司", "字节跳动科技"),
    ("company_name", "字节跳动(北京)科技有限公司", "字节跳动科技"),
    ("company_name", "字节跳动（北京）科技有限公司", "字节跳动科技"),
    ("company_name", "北京市字节跳动科技股份有限公司", "字节跳动科技"),
    ("company_name", "广东省深圳市华为技术有限责任公司", "华为技术"),
    ("company_name", "中国平安保险(集团)股份有限公司", "平安保险"),
    ("company_name", "ACME Co., Ltd.", "acme"),
    ("company_name", "Acme Company Limited", "acme"),
    ("company_name", "The ACME Corp.", "acme"),
    ("company_name", "Acme GmbH", "acme"),
    ("company_name", "ACME (Shanghai) Trading Co.,Ltd", "acme trading"),
    ("company_name", "Acme L.L.C.", "acme"),
    ("person_name", "张三", "zhang san"),
    ("person_name", "Zhang San", "zhang san"),
    ("person_name", "欧阳娜娜", "ouyang nana"),
    ("person_name", "单田芳", "shan tianfang"),                   # 单 as a surname reads Shan
    ("person_name", "Zhang San-Feng", "zhang sanfeng"),
    ("fuzzy", "Hello,  World!", "hello world"),
]


@pytest.mark.parametrize("method,value,expected", NORMALISED)
def test_normalise(method: str, value: str, expected: str | None) -> None:
    assert normalise(method, value) == expected


SAME = [
    ("company_name", "北京字节跳动科技有限公司", "字节跳动(北京)科技有限公司"),
    ("company_name", "北京字节跳动科技有限公司", "北京字节跳动科技有限公司（北京）"),
    ("company_name", "ACME Co., Ltd.", "Acme Company Limited"),
    ("company_name", "Acme Global Trading Inc.", "Global Acme Trading Ltd"),     # swapped words
    ("company_name", "Acme Global Trading", "Acme Global Tradng"),              # a typo
    ("company_name", "Acme Global Trading", "Acme Globall Trading"),            # an insertion
    ("company_name", "Northwind Logistics", "Nrothwind Logistics"),             # a transposition
    ("person_name", "张三", "Zhang San"),
    ("person_name", "张三", "San Zhang"),
    ("person_name", "张三", "zhangsan"),
    ("person_name", "Zhang San", "zhang-san"),
    ("person_name", "李娜", "Li Na"),
    ("person_name", "Wang Xiaoming", "Wang Xiaomnig"),
    ("fuzzy", "Annual maintenance contract", "annual maintenence contract"),
    ("phone", "+86 138-1234-5678", "13812345678"),
    ("email", "Li@Example.com", "li@example.com"),
    ("iexact", "ＡＢＣ 123", "abc123"),
    ("date", "2024/01/05", "2024-1-5"),
]

DIFFERENT = [
    ("company_name", "北京字节跳动科技有限公司", "北京字节跳跃科技有限公司"),   # one character apart in Chinese is another firm
    ("company_name", "华为技术有限公司", "华丽技术有限公司"),
    ("company_name", "Acme Global Trading", "Acme Global Logistics"),
    ("company_name", "Acme", "Apex"),
    ("person_name", "张三", "张伟"),
    ("person_name", "Zhang San", "Zhang Wei"),
    ("person_name", "李娜", "李华"),
    ("fuzzy", "Annual maintenance contract", "Hardware purchase order"),
    ("phone", "13812345678", "13812345679"),
    ("phone", "+1 415 555 0100", "+86 415 555 0100"),
    ("email", "li@example.com", "li@example.cn"),
    ("exact", "Acme", "acme"),
    ("date", "2024-01-05", "2024-05-01"),
]


@pytest.mark.parametrize("method,a,b", SAME)
def test_spellings_of_the_same_thing_match(method: str, a: str, b: str) -> None:
    assert _same(method, a, b), (normalise(method, a), normalise(method, b))


@pytest.mark.parametrize("method,a,b", DIFFERENT)
def test_different_things_do_not_match(method: str, a: str, b: str) -> None:
    assert not _same(method, a, b), (normalise(method, a), normalise(method, b))


def test_keys_are_few_and_bounded() -> None:
    """Blocking keys: the brand (trade words and legal forms gone) and its one-letter deletions."""
    keys = match_keys("company_name", normalise("company_name", "Acme International Trading Consultants Ltd"))
    assert 1 < len(keys) <= 17
    assert match_keys("phone", "13812345678") == {"13812345678"}
    assert match_keys("company_name", None) == set()


def test_similarity_scores_are_between_zero_and_one() -> None:
    assert similarity("company_name", "acme", "acme") == 1.0
    assert 0 < similarity("company_name", "acme global trading", "acme global tradng") < 1
    assert similarity("phone", "13812345678", "13812345679") == 0.0
    assert similarity("fuzzy", None, "x") == 0.0
