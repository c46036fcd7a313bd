"""Demo data for the default CRM: a believable sales company, one call away.

`load_demo_data(rt)` (what `metacrm demo` runs after `init`) fills an instance that has
the default CRM (`crm-default`) with:

- an org tree in `mc_departments`: 总经理办公室 → 销售部 → 华北 / 华东 / 华南销售组, and
  市场部, 财务部, 人事部 under the general manager's office (department heads set);
- 20 users, all with the password ``demo-pass-1`` (`DEMO_PASSWORD`): wang.jun 王军
  (general manager), zhang.wei 张伟 (sales director), three team leads (li.na, zhou.hao,
  he.jie), eleven reps (emily.chen with an English UI), marketing, two in finance, two in
  HR; roles "sales", "sales_manager", "finance", "hr", "employee" (the general manager
  also "admin"); managers form a reporting tree;
- 20 products (software licences, meeting-room hardware, services, consulting, training,
  consumables) with codes, units and list prices;
- `customers` customers (default 2,000; Chinese names built from city + brand + industry +
  legal form, about one in ten foreign-invested companies with English names, a few
  public institutions) created over the last 18 months, each owned by a rep of the team
  for its region, with 1–4 contacts (one primary), opportunities (with their products) in
  every stage, contracts with 1–4 product lines for the won ones (plus renewals /
  add-ons), receivable plans per contract, receivables against the plans that came due
  (confirmed by finance, which updates the plans), and follow-ups over the last 12 months;
- leads in every status (new, following, converted, invalid, void);
- about one in twelve unsold customers (at least three) released by their owners into the
  public pool (公海) `default` with a reason, their contacts and open opportunities with them.

Two doors, both keeping validation, formulas, autonumbers, dedup keys and history:
whatever a workflow touches (opportunities that change stage, contracts, receivables,
leads that change status, pool releases) goes through `records.create_record` /
`update_record` and the workflow engine, acting as the record's owner or approver; the
bulk rows nothing else touches (customers, contacts, follow-ups, receivable plans,
opportunities still in their first stage, new leads) go through `bulk_insert.insert_records`,
the documented fast path for generated data (one INSERT per batch instead of a dozen
checking queries per row). The runtime clock (`metacrm.runtime.clock`) is pointed at
simulated moments while the data is written, so `created_at`, history and autonumbers
(HT-YYYYMM-…) tell a story ending now; it is restored afterwards. Do not call this while
the same process serves requests (the CLI runs it before it starts serving).

Deterministic for a given `seed` (random.Random) on an empty instance, and idempotent:
if demo data is already there (a `demo_data` row in `mc_audit_log`, or one of the demo
users exists) it returns {} and changes nothing. Each batch of customers (with their
children) is one transaction. E-mail addresses and web sites use the reserved
`.example` top-level domain, so nothing in the demo can reach a real mailbox.
"""
from __future__ import annotations

import datetime as dt
import difflib
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterator

import sqlalchemy as sa

from . import accounts, clock, systables
from .accounts import create_user
from .catalog import Catalog, Runtime
from .demo_office import load_office_demo
from .demo_targets import load_demo_targets
from .dedup.normalise import match_keys, normalise, similarity
from .errors import BadRequest
from .principal import Principal
from .bulk_insert import NewRow, insert_records
from .records import create_record, update_record
from .workflow.engine import fire_transition

DEMO_PASSWORD = "demo-pass-1"
MARKER_ACTION = "demo_data"
BATCH_SIZE = 100
CENT = Decimal("0.01")

REQUIRED_ENTITIES = ("product", "customer", "contact", "opportunity", "contract", "receivable_plan",
                     "receivable", "followup", "lead")

# ------------------------------------------------------------------ the company

#: (key, name, parent key)
DEPARTMENTS: tuple[tuple[str, str, str | None], ...] = (
    ("gmo", "总经理办公室", None),
    ("sales", "销售部", "gmo"),
    ("north", "华北销售组", "sales"),
    ("east", "华东销售组", "sales"),
    ("south", "华南销售组", "sales"),
    ("marketing", "市场部", "gmo"),
    ("finance", "财务部", "gmo"),
    ("hr", "人事部", "gmo"),
)


@dataclass(frozen=True)
class UserSpec:
    username: str
    display_name: str
    title: str
    department: str
    manager: str | None
    roles: tuple[str, ...]
    language: str = "zh"
    heads: str | None = None  # the department this user is head of


USERS: tuple[UserSpec, ...] = (
    UserSpec("wang.jun", "王军", "总经理", "gmo", None, ("admin", "sales_manager", "general_manager"), heads="gmo"),
    UserSpec("zhang.wei", "张伟", "销售总监", "sales", "wang.jun", ("sales_manager",), heads="sales"),
    UserSpec("li.na", "李娜", "华北销售组组长", "north", "zhang.wei", ("sales_manager", "sales"), heads="north"),
    UserSpec("liu.yang", "刘洋", "销售代表", "north", "li.na", ("sales",)),
    UserSpec("chen.jing", "陈静", "销售代表", "north", "li.na", ("sales",)),
    UserSpec("ma.chao", "马超", "销售代表", "north", "li.na", ("sales",)),
    UserSpec("zhou.hao", "周浩", "华东销售组组长", "east", "zhang.wei", ("sales_manager", "sales"), heads="east"),
    UserSpec("wu.ting", "吴婷", "销售代表", "east", "zhou.hao", ("sales",)),
    UserSpec("sun.lei", "孙磊", "销售代表", "east", "zhou.hao", ("sales",)),
    UserSpec("emily.chen", "Emily Chen", "Sales representative", "east", "zhou.hao", ("sales",), language="en"),
    UserSpec("xu.qian", "许倩", "销售代表", "east", "zhou.hao", ("sales",)),
    UserSpec("he.jie", "何杰", "华南销售组组长", "south", "zhang.wei", ("sales_manager", "sales"), heads="south"),
    UserSpec("lin.xiaoyu", "林晓雨", "销售代表", "south", "he.jie", ("sales",)),
    UserSpec("guo.peng", "郭鹏", "销售代表", "south", "he.jie", ("sales",)),
    UserSpec("liang.hui", "梁慧", "销售代表", "south", "he.jie", ("sales",)),
    UserSpec("tang.ning", "唐宁", "市场经理", "marketing", "wang.jun", ("employee",), heads="marketing"),
    UserSpec("huang.li", "黄丽", "财务经理", "finance", "wang.jun", ("finance",), heads="finance"),
    UserSpec("deng.yu", "邓宇", "会计", "finance", "huang.li", ("finance",)),
    UserSpec("zheng.xin", "郑欣", "人事经理", "hr", "wang.jun", ("hr",), heads="hr"),
    UserSpec("cao.yue", "曹月", "人事专员", "hr", "zheng.xin", ("hr",)),
)
STAFF_DOMAIN = "yunshu-tech.example"

#: Who owns customers in each region, with weights (reps most, team leads some, the director a few).
OWNERS = {
    "north": (("liu.yang", 5), ("chen.jing", 5), ("ma.chao", 4), ("li.na", 3), ("zhang.wei", 1)),
    "east": (("wu.ting", 5), ("sun.lei", 5), ("xu.qian", 4), ("emily.chen", 3), ("zhou.hao", 3), ("zhang.wei", 1)),
    "south": (("lin.xiaoyu", 5), ("guo.peng", 5), ("liang.hui", 4), ("he.jie", 3)),
}

# ------------------------------------------------------------------ products

#: (code, name, category, spec, unit, price, on_sale, (min qty, max qty))
PRODUCTS: tuple[tuple[str, str, str, str, str, str, bool, tuple[int, int]], ...] = (
    ("SW-CRM-STD", "云枢CRM 标准版", "software", "按用户/年订阅", "user", "1200", True, (10, 80)),
    ("SW-CRM-PRO", "云枢CRM 专业版", "software", "按用户/年订阅，含工作流与报表", "user", "2400", True, (10, 150)),
    ("SW-CRM-ULT", "云枢CRM 旗舰版", "software", "按用户/年订阅，含私有化部署", "user", "3600", True, (20, 200)),
    ("SW-ERP-FIN", "云枢ERP 财务模块", "software", "永久授权，含一年升级", "license", "48000", True, (1, 1)),
    ("SW-BI", "云枢数据分析平台", "software", "永久授权，10个分析师席位", "license", "36000", True, (1, 2)),
    ("SW-APP-APR", "移动审批 App", "software", "按用户/年订阅", "user", "300", True, (20, 300)),
    ("HW-PANEL-86", "智能会议平板 86英寸", "hardware", "86英寸 4K 触控，含移动支架", "unit", "28800", True, (1, 10)),
    ("HW-PANEL-65", "智能会议平板 65英寸", "hardware", "65英寸 4K 触控，壁挂", "unit", "16800", True, (1, 20)),
    ("HW-VC-T1", "视频会议终端 T1", "hardware", "1080P 摄像头 + 全向麦克风", "set", "9800", True, (1, 10)),
    ("HW-FACE-A3", "人脸识别考勤机 A3", "hardware", "双目活体检测，支持 3000 人", "unit", "2680", True, (2, 40)),
    ("HW-DOOR-D5", "智能门禁一体机 D5", "hardware", "人脸/刷卡/二维码三合一", "unit", "3980", True, (2, 30)),
    ("HW-GW-E2", "边缘计算网关 E2", "hardware", "4 核 8G，工业级", "unit", "6500", False, (1, 5)),
    ("SV-IMPL", "实施服务", "service", "需求调研、配置、上线支持", "man_day", "2000", True, (5, 40)),
    ("SV-MAINT", "年度运维服务", "service", "7×12 小时远程支持，含升级", "year", "18000", True, (1, 3)),
    ("SV-MIGR", "数据迁移服务", "service", "历史数据清洗与导入", "time", "15000", True, (1, 1)),
    ("SV-ONSITE", "驻场技术支持", "service", "工程师驻场，按月计", "month", "22000", True, (1, 6)),
    ("CS-DIGI", "数字化转型咨询", "consulting", "高级顾问，按人天计", "man_day", "5000", True, (5, 30)),
    ("TR-ADMIN", "系统管理员培训", "training", "2 天集中培训，最多 10 人", "time", "6000", True, (1, 2)),
    ("TR-USER", "最终用户培训", "training", "现场培训，按人天计", "man_day", "3000", True, (1, 5)),
    ("CN-CARD", "IC 考勤卡", "consumable", "100 张/箱", "box", "800", True, (1, 10)),
)

#: Projects a customer buys: (name, English name, product codes) — opportunities and contracts use them.
PROJECTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("CRM系统采购项目", "CRM rollout", ("SW-CRM-PRO", "SV-IMPL", "TR-ADMIN", "SW-APP-APR")),
    ("销售管理平台升级项目", "sales platform upgrade", ("SW-CRM-ULT", "SV-MIGR", "SV-IMPL", "TR-USER")),
    ("CRM标准版订阅", "CRM subscription", ("SW-CRM-STD", "TR-ADMIN")),
    ("智能会议室改造项目", "smart meeting rooms", ("HW-PANEL-86", "HW-PANEL-65", "HW-VC-T1", "SV-IMPL")),
    ("考勤门禁一体化项目", "attendance and access control", ("HW-FACE-A3", "HW-DOOR-D5", "CN-CARD", "SV-IMPL")),
    ("财务数字化项目", "finance digitalisation", ("SW-ERP-FIN", "SW-BI", "SV-IMPL", "CS-DIGI")),
    ("数据分析平台建设", "analytics platform", ("SW-BI", "SV-IMPL", "SV-ONSITE")),
    ("数字化转型咨询项目", "digital transformation consulting", ("CS-DIGI", "TR-USER", "SV-ONSITE")),
)
MAINTENANCE = ("年度运维续约", "annual maintenance renewal", ("SV-MAINT", "SV-ONSITE"))

# ------------------------------------------------------------------ names and places


@dataclass(frozen=True)
class City:
    name: str
    area_code: str
    lat: float
    lng: float
    districts: tuple[str, ...]
    roads: tuple[str, ...]
    region: str


CITIES: tuple[City, ...] = (
    City("北京", "010", 39.9042, 116.4074, ("朝阳", "海淀", "东城", "西城", "丰台"),
         ("建国路", "中关村大街", "东三环中路", "知春路", "金融大街"), "north"),
    City("天津", "022", 39.0842, 117.2009, ("和平", "河西", "南开", "滨海新"), ("南京路", "友谊路", "卫津路", "黄海路"), "north"),
    City("石家庄", "0311", 38.0428, 114.5149, ("长安", "桥西", "裕华"), ("中山路", "建设大街", "槐安路"), "north"),
    City("济南", "0531", 36.6512, 117.1201, ("历下", "市中", "高新"), ("泉城路", "经十路", "舜华路"), "north"),
    City("青岛", "0532", 36.0671, 120.3826, ("市南", "崂山", "黄岛"), ("香港中路", "海尔路", "长江中路"), "north"),
    City("沈阳", "024", 41.8057, 123.4315, ("和平", "沈河", "浑南"), ("青年大街", "北站路", "创新路"), "north"),
    City("太原", "0351", 37.8706, 112.5489, ("小店", "迎泽"), ("长风街", "迎泽大街"), "north"),
    City("上海", "021", 31.2304, 121.4737, ("浦东新", "徐汇", "静安", "长宁", "闵行"),
         ("世纪大道", "漕溪北路", "南京西路", "延安西路", "虹梅路"), "east"),
    City("杭州", "0571", 30.2741, 120.1551, ("西湖", "滨江", "余杭", "拱墅"), ("文三路", "江南大道", "文一西路", "莫干山路"), "east"),
    City("南京", "025", 32.0603, 118.7969, ("鼓楼", "建邺", "玄武", "江宁"), ("中山北路", "江东中路", "珠江路", "胜太路"), "east"),
    City("苏州", "0512", 31.2989, 120.5853, ("工业园", "姑苏", "吴中", "虎丘"), ("星湖街", "人民路", "东吴北路", "狮山路"), "east"),
    City("宁波", "0574", 29.8683, 121.5440, ("鄞州", "海曙", "江北"), ("天童南路", "中山西路", "人民路"), "east"),
    City("合肥", "0551", 31.8206, 117.2272, ("蜀山", "包河", "政务"), ("长江西路", "徽州大道", "潜山路"), "east"),
    City("无锡", "0510", 31.4912, 120.3119, ("梁溪", "滨湖", "新吴"), ("人民中路", "太湖大道", "长江路"), "east"),
    City("广州", "020", 23.1291, 113.2644, ("天河", "越秀", "海珠", "番禺"), ("天河路", "珠江新城华夏路", "中山五路", "新港中路"),
         "south"),
    City("深圳", "0755", 22.5431, 114.0579, ("南山", "福田", "宝安", "龙岗"), ("深南大道", "科技园南路", "福华路", "宝安大道"),
         "south"),
    City("佛山", "0757", 23.0215, 113.1214, ("禅城", "南海", "顺德"), ("季华路", "桂澜路", "大良新城路"), "south"),
    City("东莞", "0769", 23.0205, 113.7518, ("南城", "莞城", "松山湖"), ("鸿福路", "东莞大道", "工业北路"), "south"),
    City("厦门", "0592", 24.4798, 118.0894, ("思明", "湖里", "集美"), ("湖滨南路", "软件园二期观日路", "杏林湾路"), "south"),
)
CITY_WEIGHTS = (14, 5, 2, 3, 3, 2, 1, 16, 8, 6, 6, 3, 2, 3, 9, 10, 3, 3, 3)

BRAND_FIRST = tuple(zip("星明华泰瑞恒博鑫宏嘉中联创天海汇德宇安正亿金龙盛凯启永东万卓佳锦",
                        ("xing ming hua tai rui heng bo xin hong jia zhong lian chuang tian hai hui de yu an "
                         "zheng yi jin long sheng kai qi yong dong wan zhuo jia jin").split()))
BRAND_SECOND = tuple(zip("辰远达信通源科邦峰润成拓航智诚锐弘晟蓝和兴越途宁泽合瀚坤图川",
                         ("chen yuan da xin tong yuan ke bang feng run cheng tuo hang zhi cheng rui hong sheng "
                          "lan he xing yue tu ning ze he han kun tu chuan").split()))

#: (word in the name, industry option, domain suffix, weight)
INDUSTRY_WORDS: tuple[tuple[str, str, str, int], ...] = (
    ("科技", "it", "tech", 8), ("信息技术", "it", "info", 5), ("网络科技", "it", "net", 4), ("软件", "it", "soft", 3),
    ("智能制造", "manufacturing", "im", 3), ("机械", "manufacturing", "machinery", 3),
    ("精密制造", "manufacturing", "precision", 2), ("电子", "manufacturing", "elec", 3),
    ("投资", "finance", "invest", 2), ("金融服务", "finance", "fin", 2),
    ("教育科技", "education", "edu", 2), ("医疗器械", "healthcare", "med", 3), ("医药", "healthcare", "pharma", 2),
    ("置业", "real_estate", "estate", 2), ("商贸", "retail", "trade", 3), ("连锁商业", "retail", "retail", 2),
    ("物流", "logistics", "logistics", 3), ("供应链管理", "logistics", "scm", 2),
    ("新能源", "energy", "energy", 2), ("能源科技", "energy", "power", 1),
    ("管理咨询", "services", "consulting", 2), ("人力资源", "services", "hr", 1), ("文化传媒", "other", "media", 1),
)
LEGAL_FORMS = (("有限公司", 12), ("股份有限公司", 4), ("有限责任公司", 2), ("集团有限公司", 2))

#: Public institutions: (name pattern, industry, domain slug); {city} {district} {brand} are filled in.
INSTITUTIONS: tuple[tuple[str, str, str], ...] = (
    ("{city}市{district}区政务服务管理局", "government", "zwfw"),
    ("{city}市{district}区市场监督管理局", "government", "scjg"),
    ("{city}市{district}区住房和城乡建设局", "government", "zjj"),
    ("{city}市{district}区人民医院", "healthcare", "rmyy"),
    ("{city}{brand}职业技术学院", "education", "{brand}-college"),
    ("{city}市{district}区实验中学", "education", "syzx"),
)
CITY_PINYIN = {"北京": "beijing", "天津": "tianjin", "石家庄": "sjz", "济南": "jinan", "青岛": "qingdao",
               "沈阳": "shenyang", "太原": "taiyuan", "上海": "shanghai", "杭州": "hangzhou", "南京": "nanjing",
               "苏州": "suzhou", "宁波": "ningbo", "合肥": "hefei", "无锡": "wuxi",
               "广州": "guangzhou", "深圳": "shenzhen", "佛山": "foshan", "东莞": "dongguan", "厦门": "xiamen"}

EN_BRANDS = ("Acme", "Northstar", "Bluewave", "Crestline", "Everbright", "Fairhaven", "Granite", "Harborview",
             "Ironwood", "Juniper", "Keystone", "Lumen", "Meridian", "Oakridge", "Pinnacle", "Quantix",
             "Redwood", "Silverline", "Trident", "Vertex", "Westbrook", "Zenith", "Corvus", "Delphin",
             "Marlin", "Falcon", "Glacier", "Horizon", "Osprey", "Sterling", "Tidewater", "Wolfram") + tuple(
    # Compound brands for a company of 2,000 customers: about one in ten has an English name.
    first + second for first in ("Amber", "Bright", "Cedar", "Clear", "Eagle", "Golden", "High", "Maple", "North",
                                 "Ocean", "Pine", "River", "Silver", "Stone", "Sun", "Swift")
    for second in ("field", "gate", "hill", "point", "ridge", "view", "wave", "works"))
#: (noun, industry, domain suffix)
EN_NOUNS = (("Robotics", "manufacturing", "robotics"), ("Software", "it", "software"),
            ("Logistics", "logistics", "logistics"), ("Medical", "healthcare", "medical"),
            ("Energy", "energy", "energy"), ("Consulting", "services", "consulting"),
            ("Electronics", "manufacturing", "electronics"), ("Foods", "retail", "foods"),
            ("Materials", "manufacturing", "materials"), ("Capital", "finance", "capital"))
EN_FORMS = ("Co., Ltd.", "(China) Co., Ltd.", "(Shanghai) Co., Ltd.", "Trading Co., Ltd.")
EN_CITIES = ("上海", "北京", "苏州", "深圳", "广州")

SURNAMES = tuple(zip("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡",
                     ("wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he gao lin luo zheng "
                      "liang xie song tang xu han feng deng cao peng zeng xiao tian dong yuan pan yu jiang cai")
                     .split()))
GIVEN_MALE = (("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
              ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("鹏", "peng"), ("浩", "hao"),
              ("建国", "jianguo"), ("志强", "zhiqiang"), ("海涛", "haitao"), ("俊杰", "junjie"), ("文博", "wenbo"),
              ("子豪", "zihao"), ("宇航", "yuhang"), ("立新", "lixin"), ("国华", "guohua"), ("振宇", "zhenyu"))
GIVEN_FEMALE = (("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
                ("娟", "juan"), ("霞", "xia"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"), ("欣怡", "xinyi"),
                ("晓燕", "xiaoyan"), ("雅琴", "yaqin"), ("梦瑶", "mengyao"), ("佳怡", "jiayi"), ("秀英", "xiuying"),
                ("慧敏", "huimin"), ("思雨", "siyu"), ("玉兰", "yulan"))
EN_FIRST_MALE = ("David", "Michael", "Kevin", "Jason", "Eric", "Peter", "Tony", "Frank", "Daniel", "Mark")
EN_FIRST_FEMALE = ("Linda", "Grace", "Cathy", "Sophia", "Anna", "Helen", "Vivian", "Irene", "Julia", "Nina")
EN_SURNAMES = ("Wang", "Li", "Zhang", "Chen", "Liu", "Smith", "Miller", "Schmidt", "Tanaka", "Kim", "Brown", "Weber")

#: (title, department at the customer, decision maker?)
JOB_TITLES = (("总经理", "总经理办公室", True), ("副总经理", "总经理办公室", True), ("采购经理", "采购部", False),
              ("采购总监", "采购部", True), ("IT经理", "信息部", False), ("信息中心主任", "信息部", True),
              ("财务总监", "财务部", True), ("财务经理", "财务部", False), ("行政主管", "行政部", False),
              ("运营经理", "运营部", False), ("项目经理", "信息部", False), ("董事长助理", "总经理办公室", False))
EN_JOB_TITLES = (("General Manager", "Management", True), ("Purchasing Manager", "Procurement", False),
                 ("IT Director", "IT", True), ("CFO", "Finance", True), ("Office Manager", "Administration", False),
                 ("Operations Manager", "Operations", False), ("Project Manager", "IT", False))

MOBILE_PREFIXES = ("138", "139", "135", "136", "137", "150", "151", "158", "186", "187", "188", "189", "177",
                   "133", "180", "181")

SOURCES = (("referral", 5), ("exhibition", 4), ("search_engine", 4), ("phone_inquiry", 3), ("online_signup", 3),
           ("advertising", 2), ("promotion", 2), ("cold_call", 3), ("other", 1))
OPP_SOURCE = {"cold_call": "other"}  # customer/lead sources the opportunity select lacks

STAGE_WIN_RATE = {"initial": 10, "needs": 20, "proposal": 40, "negotiation": 60, "won": 100, "lost": 0,
                  "invalid": 0}
STAGES_ALL = ("initial", "needs", "proposal", "negotiation", "won", "lost", "invalid")
#: The opportunity_stages transition into each stage (records change stage only through them).
STAGE_MOVES = {"needs": "to_needs", "proposal": "to_proposal", "negotiation": "to_negotiation", "won": "win",
               "lost": "lose", "invalid": "invalidate"}
LEAD_MOVES = {"following": "follow", "converted": "convert", "invalid": "invalidate", "void": "void"}
STAGE_WEIGHTS = (("initial", 14), ("needs", 14), ("proposal", 14), ("negotiation", 10), ("won", 30),
                 ("lost", 12), ("invalid", 6))
LOST_REASONS = ("客户选择了价格更低的竞品", "项目预算被砍，暂停采购", "决策人变动，新负责人倾向原有供应商",
                "功能不满足客户的定制化需求", "交付周期无法满足客户要求")
COMPETITORS = ("纷享销客", "销售易", "用友", "金蝶", "Salesforce", "钉钉", "企业微信生态伙伴", "希沃", "海康威视", "本地集成商")
PAYMENT_METHODS = (("bank_transfer", 12), ("acceptance_bill", 3), ("wechat_pay", 1), ("alipay", 1), ("cheque", 1))
INSTALMENTS = (((100,), 3), ((50, 50), 3), ((30, 40, 30), 3), ((30, 60, 10), 2))

FOLLOWUP_TYPES = (("call", 8), ("wechat", 6), ("visit", 4), ("email", 3), ("sms", 1), ("other", 1))
ZH_TOPICS = ("了解了现有系统的使用情况", "演示了{product}的主要功能", "确认了项目预算和时间表", "讨论了{product}的报价",
             "介绍了公司最新的解决方案", "回访了上次实施的效果", "协调了合同付款事宜", "沟通了续约意向",
             "收集了各部门的需求清单", "安排了技术交流会")
ZH_REACTIONS = ("对方比较感兴趣，希望下周安排技术交流", "需要内部讨论后答复", "对价格有顾虑，希望再给一些折扣",
                "反馈很好，准备推进立项", "暂时没有采购计划，保持联系", "要求补充同行业案例资料", "已经提交给领导审批",
                "提出了两个定制需求，需要产品部评估")
ZH_DOCS = ("产品方案", "报价单", "案例资料", "合同草稿", "实施计划")
EN_TOPICS = ("reviewed how they use their current system", "demonstrated the main features of {product}",
             "confirmed the budget and timeline", "discussed the quote for {product}",
             "presented our latest solution", "checked how the last rollout went", "sorted out the payment schedule",
             "talked about renewing the contract")
EN_REACTIONS = ("they are interested and want a technical session next week", "they will discuss it internally",
                "they find the price high and ask for a discount", "positive feedback, they plan to start the project",
                "no purchase planned for now, keep in touch", "they asked for references in their industry",
                "it is with their management for approval")
EN_DOCS = ("the proposal", "the quote", "customer references", "the draft contract", "the rollout plan")

LEAD_STATUSES = ("new", "following", "converted", "invalid", "void")
LEAD_STATUS_WEIGHTS = (("new", 3), ("following", 4), ("converted", 2), ("invalid", 2), ("void", 1))
INVALID_REASONS = ("电话空号，无法联系", "同行咨询，非真实需求", "个人用户，不在服务范围", "重复提交的线索")
VOID_REASONS = ("客户已被其他同事跟进", "测试数据")

# ------------------------------------------------------------------ helpers


def _weighted(rng: random.Random, pairs: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class _SimulatedClock:
    """The runtime clock while demo data is written: a moment we move along the story."""

    def __init__(self, at: dt.datetime):
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


@contextmanager
def _simulated_clock(start: dt.datetime) -> Iterator[_SimulatedClock]:
    previous: Callable[[], dt.datetime] = clock._now  # restored exactly (tests may have frozen it)
    sim = _SimulatedClock(start)
    clock.set_clock(sim)
    try:
        yield sim
    finally:
        clock.set_clock(previous)


@dataclass
class Staff:
    spec: UserSpec
    id: int
    department_id: int
    principal: Principal


@dataclass
class Company:
    name: str
    short: str  # brand + industry word, used in opportunity and contract names
    domain: str
    industry: str
    city: City
    english: bool


@dataclass
class Story:
    """What one customer is: decided before anything is written."""

    company: Company
    owner: Staff
    level: str
    created: dt.datetime


@dataclass
class Context:
    rng: random.Random
    now: dt.datetime
    sim: _SimulatedClock
    staff: dict[str, Staff]
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    names: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    all_names: set[str] = field(default_factory=set)
    name_keys: dict[str, list[str]] = field(default_factory=dict)  # company_name match key -> names
    brands: set[str] = field(default_factory=set)
    brand_chars: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    en_brands: list[str] = field(default_factory=list)
    #: customer name -> (story, primary contact's name, mobile, e-mail): for the converted leads
    converted: dict[str, tuple["Story", str, str, str]] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def at(self, moment: dt.datetime) -> None:
        self.sim.at = moment

    # -- unique contact data

    def mobile(self) -> str:
        while True:
            n = f"{self.rng.choice(MOBILE_PREFIXES)}{self.rng.randrange(10**8):08d}"
            if n not in self.phones:
                self.phones.add(n)
                return f"+86 {n[:3]} {n[3:7]} {n[7:]}"

    def landline(self, city: City) -> str:
        digits = 8 if len(city.area_code) == 3 else 7
        while True:
            local = f"{self.rng.randrange(2, 9)}{self.rng.randrange(10 ** (digits - 1)):0{digits - 1}d}"
            key = city.area_code + local
            if key not in self.phones:
                self.phones.add(key)
                return f"{city.area_code}-{local}"

    def email(self, local: str, domain: str) -> str:
        candidate, n = f"{local}@{domain}", 1
        while candidate in self.emails:
            n += 1
            candidate = f"{local}{n}@{domain}"
        self.emails.add(candidate)
        return candidate


def _work_time(rng: random.Random, day: dt.date) -> dt.datetime:
    """A moment in office hours in China (09:00–18:00 +08:00 is 01:00–10:00 UTC)."""
    return dt.datetime(day.year, day.month, day.day, 1, 0, tzinfo=dt.timezone.utc) + dt.timedelta(
        minutes=rng.randrange(9 * 60))


def _between(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    if end <= start:
        return start
    return start + dt.timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def _office_between(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """A moment in office hours between start and end (clipped to them)."""
    moment = _work_time(rng, _between(rng, start, end).date())
    return min(max(moment, start), end)


# ------------------------------------------------------------------ company names

def _similar(a: str, b: str) -> bool:
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.85


def _new_company(ctx: Context) -> Company:
    """A company name nobody in the demo has, nor one a dedup rule would call the same."""
    rng = ctx.rng
    roll = rng.random()
    if roll < 0.05:
        company = _institution(ctx)
        if company is not None:
            return company
    if roll < 0.15 and len(ctx.en_brands) < len(EN_BRANDS):
        company = _english_company(ctx)
        if company is not None:
            return company
    for attempt in range(400):
        city = rng.choices(CITIES, weights=CITY_WEIGHTS)[0]
        first, second = rng.choice(BRAND_FIRST), rng.choice(BRAND_SECOND)
        if first[0] == second[0]:
            continue
        brand, pinyin = first[0] + second[0], first[1] + second[1]
        if attempt > 40:  # the two-character brands are running out: take a third
            third = rng.choice(BRAND_SECOND)
            brand, pinyin = brand + third[0], pinyin + third[1]
        word, industry, suffix, _ = rng.choices(INDUSTRY_WORDS, weights=[w[3] for w in INDUSTRY_WORDS])[0]
        form = _weighted(rng, LEGAL_FORMS)
        name = f"{city.name}{brand}{word}{form}"
        # Same city and industry word: the brands share no character, so no two names are
        # near-duplicates once a dedup rule strips the legal form (see METADATA.md, company_name).
        used = ctx.brand_chars.setdefault((city.name, word), set())
        if brand in ctx.brands or pinyin in ctx.brands or used & set(brand) \
                or not _claim_name(ctx, (city.name, word, form), name):
            continue
        used.update(brand)
        ctx.brands.update((brand, pinyin))
        return Company(name, brand + word, f"{pinyin}-{suffix}.example", industry, city, False)
    raise RuntimeError("Ran out of distinct demo company names; ask for fewer customers.")


#: The default CRM's company-name rules (customer_by_name_or_phone, its also_check on leads,
#: lead_by_company_and_phone) call names this alike the same company.
COMPANY_THRESHOLD = 0.92


def _claim_name(ctx: Context, bucket: tuple[str, ...], name: str) -> bool:
    """Take `name` unless the dedup rules would call it a duplicate of one taken before.

    The bulk path stores dedup keys but checks nothing, so the generator checks here, the
    way the engine does: candidates share a match key of `company_name`, then score."""
    if name in ctx.all_names:
        return False
    peers = ctx.names.setdefault(bucket, [])
    if any(_similar(name, other) for other in peers):
        return False
    norm = normalise("company_name", name)
    keys = match_keys("company_name", norm)
    for key in keys:
        if any(similarity("company_name", norm, other) >= COMPANY_THRESHOLD for other in ctx.name_keys.get(key, ())):
            return False
    for key in keys:
        ctx.name_keys.setdefault(key, []).append(norm)
    peers.append(name)
    ctx.all_names.add(name)
    return True


def _institution(ctx: Context) -> Company | None:
    rng = ctx.rng
    for _ in range(20):
        pattern, industry, slug = rng.choice(INSTITUTIONS)
        city = rng.choices(CITIES, weights=CITY_WEIGHTS)[0]
        district = rng.choice(city.districts)
        first, second = rng.choice(BRAND_FIRST), rng.choice(BRAND_SECOND)
        brand = first[0] + second[0]
        if "{brand}" in pattern and (brand in ctx.brands or first[0] == second[0]):
            continue
        name = pattern.format(city=city.name, district=district, brand=brand)
        if (city.name, pattern) in ctx.brand_chars or not _claim_name(ctx, ("institution", city.name), name):
            continue
        ctx.brand_chars[(city.name, pattern)] = set()  # one of each kind per city: the rest of the name is alike
        if "{brand}" in pattern:
            ctx.brands.add(brand)
        domain = f"{slug.format(brand=first[1] + second[1])}.{CITY_PINYIN[city.name]}.example"
        return Company(name, name.replace(f"{city.name}市", "", 1), domain, industry, city, False)
    return None


def _english_company(ctx: Context) -> Company | None:
    rng = ctx.rng
    brand = rng.choice([b for b in EN_BRANDS if b not in ctx.en_brands])
    noun, industry, suffix = rng.choice(EN_NOUNS)
    form = rng.choice(EN_FORMS)
    name = f"{brand} {noun} {form}"
    if not _claim_name(ctx, ("en", noun), name):
        return None
    ctx.en_brands.append(brand)
    city_name = rng.choice(EN_CITIES)
    city = next(c for c in CITIES if c.name == city_name)
    return Company(name, f"{brand} {noun}", f"{brand.lower()}-{suffix}.example", industry, city, True)


# ------------------------------------------------------------------ people

def _person(ctx: Context, english: bool) -> tuple[str, str, str]:
    """(display name, e-mail local part, gender)."""
    rng = ctx.rng
    gender = rng.choice(("male", "female"))
    if english:
        first = rng.choice(EN_FIRST_MALE if gender == "male" else EN_FIRST_FEMALE)
        last = rng.choice(EN_SURNAMES)
        return f"{first} {last}", f"{first}.{last}".lower(), gender
    surname, s_py = rng.choice(SURNAMES)
    given, g_py = rng.choice(GIVEN_MALE if gender == "male" else GIVEN_FEMALE)
    return surname + given, f"{g_py}.{s_py}", gender


def _location(ctx: Context, city: City) -> dict[str, Any]:
    rng = ctx.rng
    district = rng.choice(city.districts)
    address = f"{city.name}市{district}区{rng.choice(city.roads)}{rng.randrange(1, 999)}号"
    if rng.random() < 0.5:
        address += f"{rng.choice('ABCDEFG')}座{rng.randrange(2, 30)}层"
    return {"lat": round(city.lat + rng.uniform(-0.12, 0.12), 6), "lng": round(city.lng + rng.uniform(-0.12, 0.12), 6),
            "address": address}


# ------------------------------------------------------------------ organisation and products

def _already_loaded(conn: sa.Connection) -> bool:
    a, u = systables.audit_log, systables.users
    if conn.execute(sa.select(a.c.id).where(a.c.action == MARKER_ACTION).limit(1)).first() is not None:
        return True
    return conn.execute(sa.select(u.c.id).where(u.c.username.in_([s.username for s in USERS])).limit(1)
                        ).first() is not None


def _create_org(conn: sa.Connection, ctx: Context) -> None:
    d = systables.departments
    dept_ids: dict[str, int] = {}
    positions: dict[str | None, int] = {}
    for key, name, parent in DEPARTMENTS:
        position = positions.get(parent, 0)
        positions[parent] = position + 1
        dept_ids[key] = conn.execute(d.insert().values(
            name=name, parent_id=dept_ids[parent] if parent else None, position=position,
            created_at=clock.utcnow()).returning(d.c.id)).scalar_one()
    ctx.count("departments", len(DEPARTMENTS))
    shared_hash = accounts.generate_password_hash(DEMO_PASSWORD)  # one scrypt for the twenty of them
    for spec in USERS:
        ctx.at(ctx.sim.at + dt.timedelta(days=ctx.rng.randrange(1, 20)))
        account = create_user(conn, spec.username, DEMO_PASSWORD, display_name=spec.display_name,
                              language=spec.language, email=f"{spec.username}@{STAFF_DOMAIN}",
                              department_id=dept_ids[spec.department],
                              manager_id=ctx.staff[spec.manager].id if spec.manager else None, roles=spec.roles,
                              password_hash=shared_hash)
        principal = Principal(user_id=account.id, username=spec.username, display_name=spec.display_name,
                              roles=frozenset(spec.roles), department_id=dept_ids[spec.department],
                              language=spec.language)
        ctx.staff[spec.username] = Staff(spec, account.id, dept_ids[spec.department], principal)
        if spec.heads:
            conn.execute(d.update().where(d.c.id == dept_ids[spec.heads]).values(head_id=account.id))
    ctx.count("users", len(USERS))


def _create_products(conn: sa.Connection, catalog: Catalog, ctx: Context) -> None:
    # The product catalogue is the general manager's (role admin); the sales director
    # is the responsible department's head.
    director = ctx.staff["zhang.wei"]
    manager = ctx.staff["wang.jun"]
    for code, name, category, spec, unit, price, on_sale, _ in PRODUCTS:
        ctx.at(ctx.sim.at + dt.timedelta(hours=ctx.rng.randrange(1, 48)))
        record = create_record(conn, catalog, manager.principal, "product", {
            "name": name, "code": code, "category": category, "spec": spec, "unit": unit, "price": price,
            "on_sale": on_sale, "responsible_department": director.department_id,
            "description": f"<p>{name}：{spec}。</p>"})
        ctx.products[code] = record
        ctx.count("products")


# ------------------------------------------------------------------ one customer and everything about it

def _plan_customers(ctx: Context, n: int) -> list[Story]:
    rng = ctx.rng
    stories = []
    for i in range(n):
        company = _new_company(ctx)
        owners = OWNERS[company.city.region]
        owner = ctx.staff[_weighted(rng, owners)]
        if owner.spec.username == "zhang.wei" or company.english and rng.random() < 0.5:
            level = _weighted(rng, (("A", 2), ("B", 1)))
        else:
            level = _weighted(rng, (("A", 3), ("B", 11), ("C", 6)))
        if company.english and company.city.region == "east" and rng.random() < 0.6:
            owner = ctx.staff["emily.chen"]
        elif owner.spec.language == "en" and not company.english and rng.random() < 0.6:
            # emily.chen mostly looks after the foreign-invested companies of 华东
            owner = ctx.staff[_weighted(rng, (("wu.ting", 1), ("sun.lei", 1)))]
        # Customers from up to 18 months back, more of them recent (the company is growing).
        age_days = int(540 * (rng.random() ** 1.1)) + 2
        if i < len(STAGES_ALL):  # the first few are old enough to have closed deals in every stage
            age_days = max(age_days, 120 + 20 * i)
        created = _work_time(rng, (ctx.now - dt.timedelta(days=age_days)).date())
        created = min(created, ctx.now - dt.timedelta(days=2))
        stories.append(Story(company, owner, level, created))
    return stories


def _customer_payload(ctx: Context, story: Story, next_followup: dt.datetime | None) -> dict[str, Any]:
    rng, company = ctx.rng, story.company
    scale = {"A": (("500-999", 2), ("1000+", 3), ("100-499", 1)),
             "B": (("20-99", 2), ("100-499", 3), ("500-999", 1)),
             "C": (("1-19", 2), ("20-99", 3))}[story.level]
    tags: list[str] = []
    if story.level == "A":
        tags += rng.sample(("strategic", "long_term", "high_potential"), rng.randrange(1, 3))
    for tag, p in (("price_sensitive", 0.15), ("referrer", 0.1), ("at_risk", 0.06), ("high_potential", 0.1)):
        if rng.random() < p and tag not in tags:
            tags.append(tag)
    payload: dict[str, Any] = {
        "name": company.name, "level": story.level, "industry": company.industry,
        "source": _weighted(rng, SOURCES), "deal_status": "unsold", "tags": tags,
        "phone": ctx.landline(company.city),
        "mobile": ctx.mobile() if rng.random() < 0.4 else None,
        "email": ctx.email(rng.choice(("info", "contact", "service", "office")), company.domain),
        "website": f"https://www.{company.domain}",
        "address": _location(ctx, company.city),
        "scale": _weighted(rng, scale),
        "next_followup_at": next_followup.isoformat() if next_followup else None,
        "owner": story.owner.id, "department": story.owner.department_id,
    }
    if story.level == "A":
        payload["credit_limit"] = str(rng.choice((20, 30, 50, 80, 100, 150, 200)) * 10000)
    if rng.random() < 0.12:
        payload["remark"] = rng.choice(("年底预算充足，重点跟进", "客户IT负责人是老朋友介绍的", "对售后服务要求高",
                                        "每年三月集中采购", "需要开具增值税专用发票"))
    return {k: v for k, v in payload.items() if v is not None}


def _contact_rows(ctx: Context, story: Story, customer_id: int) -> list[NewRow]:
    """A customer's 1–4 contacts (the first one primary), for the bulk path."""
    rng, company = ctx.rng, story.company
    n = _weighted(rng, ((1, 4), (2, 4), (3, 2))) + (1 if story.level == "A" and rng.random() < 0.5 else 0)
    titles = EN_JOB_TITLES if company.english else JOB_TITLES
    picked = rng.sample(titles, min(n, 3))
    contacts = []
    for i, (title, dept_name, decision_maker) in enumerate(picked):
        name, local, gender = _person(ctx, company.english and rng.random() < 0.7)
        at = story.created + dt.timedelta(minutes=5 + 3 * i) if i == 0 else \
            _office_between(rng, story.created, min(story.created + dt.timedelta(days=90), ctx.now))
        payload: dict[str, Any] = {
            "name": name, "customer": customer_id, "title": title, "dept_name": dept_name,
            "mobile": ctx.mobile(), "email": ctx.email(local, company.domain),
            "is_primary": i == 0, "is_decision_maker": decision_maker, "gender": gender,
            "owner": story.owner.id, "department": story.owner.department_id,
        }
        if rng.random() < 0.5:
            extension = f" 转{rng.randrange(100, 999)}" if rng.random() < 0.5 else ""
            payload["phone"] = ctx.landline(company.city) + extension
        if rng.random() < 0.6:
            payload["wechat"] = f"{local.replace('.', '_')}{rng.randrange(10, 99)}"
        if rng.random() < 0.4:
            birthday = dt.date(rng.randrange(1965, 1996), rng.randrange(1, 13), rng.randrange(1, 29))
            payload["birthday"] = birthday.isoformat()
        contacts.append(NewRow(story.owner.principal, at, payload))
    return contacts


def _bundle(ctx: Context, project: tuple[str, str, tuple[str, ...]], level: str) -> list[tuple[dict[str, Any], int]]:
    """The products of a project with quantities: 1–4 lines, bigger for key customers."""
    rng = ctx.rng
    codes = [c for c in project[2] if ctx.products[c]["on_sale"]]
    keep = max(1, min(4, len(codes) - (1 if rng.random() < 0.4 else 0)))
    lines = []
    spec = {p[0]: p for p in PRODUCTS}
    for code in codes[:keep]:
        low, high = spec[code][7]
        qty = rng.randint(low, high)
        if level == "A":
            qty = min(high * 2, qty + rng.randint(0, high))
        elif level == "C":
            qty = max(low, qty // 2)
        lines.append((ctx.products[code], qty))
    return lines


def _list_total(lines: list[tuple[dict[str, Any], int]]) -> Decimal:
    return sum((Decimal(p["price"]) * qty for p, qty in lines), Decimal(0))


def _text(ctx: Context, staff: Staff, kind: str, contact: str | None, product: str) -> str:
    """What a rep writes down after a call, visit, message…, in the rep's language."""
    rng = ctx.rng
    english = staff.spec.language == "en"
    topic = rng.choice(EN_TOPICS if english else ZH_TOPICS).format(product=product)
    reaction = rng.choice(EN_REACTIONS if english else ZH_REACTIONS)
    doc = rng.choice(EN_DOCS if english else ZH_DOCS)
    if english:
        who = contact or "the customer"
        return {"call": f"Called {who}, {topic}; {reaction}.",
                "visit": f"Visited {who} on site, {topic}; {reaction}.",
                "wechat": f"Sent {doc} to {who} on WeChat; {reaction}.",
                "email": f"E-mailed {doc} to {who}; {reaction}.",
                "sms": f"Texted {who} a reminder about our meeting.",
                "other": f"Met {who} at an industry event, {topic}."}[kind]
    who = contact or "客户"
    return {"call": f"电话联系{who}，{topic}，{reaction}。",
            "visit": f"上门拜访{who}，{topic}，{reaction}。",
            "wechat": f"微信给{who}发送了{doc}，{reaction}。",
            "email": f"邮件发送{doc}给{who}，{reaction}。",
            "sms": f"短信提醒{who}下周的会议安排。",
            "other": f"在行业展会上遇到{who}，{topic}。"}[kind]


#: An opportunity as made: (record, created at, final stage, product lines, closed at or None).
Opportunity = tuple[dict[str, Any], dt.datetime, str, list[tuple[dict[str, Any], int]], dt.datetime | None]


def _create_opportunities(conn: sa.Connection, catalog: Catalog, ctx: Context, story: Story, index: int,
                          customer: dict[str, Any], contacts: list[dict[str, Any]]) -> list[Opportunity]:
    """A customer's opportunities: open ones recent, closed ones moved to won/lost/invalid when they closed."""
    rng, now = ctx.rng, ctx.now
    # Most accounts are being worked, fewer have a deal on: about 0.6 opportunities a customer.
    count = {"A": _weighted(rng, ((1, 3), (2, 2), (3, 1))), "B": _weighted(rng, ((0, 6), (1, 4), (2, 1))),
             "C": _weighted(rng, ((0, 4), (1, 1)))}[story.level]
    if index < len(STAGES_ALL):
        count = max(count, 1)
    earliest = story.created + dt.timedelta(days=1)
    out = []
    for k in range(count):
        if earliest > now - dt.timedelta(days=1):
            break
        stage = STAGES_ALL[index] if index < len(STAGES_ALL) and k == 0 else _weighted(rng, STAGE_WEIGHTS)
        closed = stage in ("won", "lost", "invalid")
        if closed and earliest > now - dt.timedelta(days=20):
            stage, closed = rng.choice(("initial", "needs", "proposal")), False
        if closed:
            created = _office_between(rng, earliest, now - dt.timedelta(days=20))
            span = min(120, (now - created).days - 1)
            closed_at = _office_between(rng, created + dt.timedelta(days=min(10, span)),
                                        created + dt.timedelta(days=span))
            closed_at = min(closed_at, now - dt.timedelta(hours=1))
        else:
            created = _office_between(rng, max(earliest, now - dt.timedelta(days=150)), now - dt.timedelta(hours=2))
            closed_at = None
        project = rng.choice(PROJECTS)
        lines = _bundle(ctx, project, story.level)
        amount = _list_total(lines)
        contact = rng.choice(contacts)
        opening = rng.choice(("initial", "needs", "proposal")) if closed else stage
        payload: dict[str, Any] = {
            "name": f"{story.company.short} {project[1]}" if story.company.english else
                    f"{story.company.short}{project[0]}",
            "customer": customer["id"], "contact": contact["id"], "amount": str(amount),
            "win_rate": STAGE_WIN_RATE["initial"],
            "source": "existing_customer" if k > 0 else OPP_SOURCE.get(customer["source"], customer["source"]),
            "owner": story.owner.id, "department": story.owner.department_id,
            # the products of the deal at list price (the contract negotiates discounts)
            "lines": [{"product": p["id"], "quantity": qty, "price": p["price"]} for p, qty in lines],
        }
        if closed_at is not None:
            payload["expected_close_date"] = closed_at.date().isoformat()
        else:
            payload["expected_close_date"] = (now + dt.timedelta(days=rng.randrange(10, 120))).date().isoformat()
        if rng.random() < 0.4:
            payload["competitor"] = "、".join(rng.sample(COMPETITORS, rng.randrange(1, 3)))
        ctx.at(created)
        if opening == "initial" and closed_at is None:  # no workflow step ahead of it: the bulk path
            record = dict(payload, id=insert_records(conn, catalog, "opportunity", [
                NewRow(story.owner.principal, created, payload)])[0], stage="initial")
        else:
            record = create_record(conn, catalog, story.owner.principal, "opportunity", payload)
        ctx.count("opportunities")
        if opening != "initial":  # stages change through the opportunity_stages workflow
            ctx.at(created + dt.timedelta(minutes=30))
            record = fire_transition(conn, catalog, story.owner.principal, "opportunity", record["id"],
                                     STAGE_MOVES[opening])
        if closed_at is not None:
            ctx.at(closed_at)
            change: dict[str, Any] = {}
            if stage == "lost":
                change["lost_reason"] = rng.choice(LOST_REASONS)
            elif stage == "invalid":
                change["remark"] = "客户需求不明确，经核实为无效商机"
            elif stage == "won":
                change["expected_close_date"] = closed_at.date().isoformat()
                ctx.count("followups")  # the workflow records a follow-up on every won deal
            record = fire_transition(conn, catalog, story.owner.principal, "opportunity", record["id"],
                                     STAGE_MOVES[stage], {"values": change})
        out.append((record, created, stage, lines, closed_at))
        earliest = created + dt.timedelta(days=rng.randrange(10, 90))
    return out


def _create_contract(conn: sa.Connection, catalog: Catalog, ctx: Context, story: Story, customer: dict[str, Any],
                     signer: dict[str, Any], signed: dt.datetime, lines: list[tuple[dict[str, Any], int]],
                     name: str, kind: str, opportunity: dict[str, Any] | None) -> dict[str, Any]:
    rng, now = ctx.rng, ctx.now
    discount = rng.choice((0, 0, 5, 8, 10, 15))
    rows = []
    for product, qty in lines:
        row: dict[str, Any] = {"product": product["id"], "price": product["price"], "quantity": qty}
        if discount and product["category"] != "consumable":
            row["discount"] = discount
        if rng.random() < 0.3:
            row["description"] = product["spec"]
        rows.append(row)
    start = signed.date() + dt.timedelta(days=rng.randrange(0, 15))
    years = 1 if rng.random() < 0.75 else rng.choice((2, 3))
    end = start.replace(year=start.year + years) - dt.timedelta(days=1) if not (start.month == 2 and start.day == 29) \
        else dt.date(start.year + years, 2, 28)
    payload: dict[str, Any] = {
        "name": name, "customer": customer["id"], "type": kind, "customer_signer": signer["id"],
        "signer": story.owner.id, "sign_date": signed.date().isoformat(), "start_date": start.isoformat(),
        "end_date": end.isoformat(), "payment_method": _weighted(rng, PAYMENT_METHODS), "lines": rows,
        "owner": story.owner.id, "department": story.owner.department_id,
    }
    if opportunity is not None:
        payload["opportunity"] = opportunity["id"]
    ctx.at(signed)
    contract = create_record(conn, catalog, story.owner.principal, "contract", payload)
    ctx.count("contracts")
    ctx.count("contract_lines", len(rows))
    # Contracts start as drafts; all but the newest went through contract approval.
    age = (now - signed).days
    outcome = "approved" if age > 14 else _weighted(rng, (("approved", 2), ("pending", 2), ("draft", 1),
                                                          ("rejected", 1)))
    if outcome != "draft":
        _through_approval(conn, catalog, ctx, story, "contract", contract["id"], signed, outcome)

    # Receivable plans: the contract amount in instalments; receivables for those that came due.
    total = Decimal(contract["amount"])
    shares = _weighted(rng, INSTALMENTS)
    due = signed.date() + dt.timedelta(days=rng.randrange(3, 20))
    remaining = total
    for period, share in enumerate(shares, start=1):
        amount = remaining if period == len(shares) else _money(total * share / 100)
        remaining -= amount
        if amount <= 0:
            continue
        # A plan of an approved contract that came due: mostly paid in full, some partly, some overdue.
        fate = _weighted(rng, (("done", 15), ("partial", 2), ("overdue", 3))) \
            if due < now.date() and outcome == "approved" else None
        # Plans aren't driven by a workflow (confirmed receivables update them): the bulk path.
        plan_id, = insert_records(conn, catalog, "receivable_plan", [NewRow(
            story.owner.principal, signed + dt.timedelta(minutes=10 + period), {
                "contract": contract["id"], "customer": customer["id"], "period": period,
                "plan_date": due.isoformat(), "amount": str(amount),
                "status": "overdue" if fate == "overdue" else "pending",
                "owner": story.owner.id, "department": story.owner.department_id})])
        ctx.count("receivable_plans")
        if fate in ("done", "partial"):
            _receive(conn, catalog, ctx, story, contract, customer, plan_id, amount, fate, due, signed)
        due += dt.timedelta(days=rng.randrange(60, 150))
    return contract


def _through_approval(conn: sa.Connection, catalog: Catalog, ctx: Context, story: Story, entity: str,
                      record_id: int, at: dt.datetime, outcome: str) -> None:
    """Submit a record as its owner and let each pending approver decide in turn, until
    the approval ends (`approved` / `rejected`) or, for `pending`, after the first step."""
    t = systables.approval_tasks
    a = systables.approvals
    by_id = {s.id: s.principal for s in ctx.staff.values()}
    moment = min(at + dt.timedelta(minutes=20), ctx.now)
    ctx.at(moment)
    fire_transition(conn, catalog, story.owner.principal, entity, record_id, "submit")
    for decided in range(6):
        waiting = conn.execute(sa.select(t.c.user_id).select_from(t.join(a, a.c.id == t.c.approval_id)).where(
            a.c.entity == entity, a.c.record_id == record_id, a.c.status == "pending", t.c.status == "pending")
            .order_by(t.c.id).limit(1)).scalar()
        if waiting is None or (outcome == "pending" and decided >= 1):
            return
        moment = min(moment + dt.timedelta(hours=ctx.rng.randrange(1, 20)), ctx.now)
        ctx.at(moment)
        principal = by_id.get(waiting) or Principal(user_id=waiting, username="admin", is_admin=True)
        if outcome == "rejected":
            fire_transition(conn, catalog, principal, entity, record_id, "reject",
                            {"comment": ctx.rng.choice(("价格折扣过大，请重新核算", "付款条件需要调整", "请补充客户资质材料"))})
            return
        fire_transition(conn, catalog, principal, entity, record_id, "approve",
                        {"comment": ctx.rng.choice(("同意", "同意，请按期回款", "OK", None))})


def _receive(conn: sa.Connection, catalog: Catalog, ctx: Context, story: Story, contract: dict[str, Any],
             customer: dict[str, Any], plan_id: int, planned: Decimal, outcome: str, due: dt.date,
             signed: dt.datetime) -> None:
    """The money for a plan that came due: all of it, or part of it; confirmed by finance
    through the receivable workflow unless it came in the last few days."""
    rng, now = ctx.rng, ctx.now
    received_on = max(min(due + dt.timedelta(days=rng.randrange(-3, 12)), now.date()), signed.date())
    amount = planned if outcome == "done" else _money(planned * Decimal(rng.randrange(30, 71)) / 100)
    if amount <= 0:
        return
    ctx.at(max(min(_work_time(rng, received_on), now), signed + dt.timedelta(hours=1)))
    receivable = create_record(conn, catalog, story.owner.principal, "receivable", {
        "contract": contract["id"], "customer": customer["id"], "plan": plan_id,
        "received_at": received_on.isoformat(), "amount": str(amount),
        "payment_method": contract.get("payment_method") or "bank_transfer",
        "owner": story.owner.id, "department": story.owner.department_id})
    ctx.count("receivables")
    if (now.date() - received_on).days > 3:  # finance confirms the money within a few days
        _through_approval(conn, catalog, ctx, story, "receivable", receivable["id"],
                          max(min(_work_time(rng, received_on), now), signed + dt.timedelta(hours=1)), "approved")
    # Finance's confirmation updates the plan's received amount and status (the
    # receivable_confirmation workflow's rollup action); an unconfirmed one leaves it pending.


def _followup_moments(ctx: Context, story: Story) -> tuple[list[dt.datetime], dt.datetime | None]:
    """When the owner followed the customer up over the last 12 months (key accounts about
    monthly), and the next follow-up the last one planned."""
    rng, now = ctx.rng, ctx.now
    since = max(story.created + dt.timedelta(hours=2), now - dt.timedelta(days=365))
    months = max(0.0, (now - since).days / 30)
    rate = {"A": 1.0, "B": 0.5, "C": 0.25}[story.level] * rng.uniform(0.6, 1.4)
    n_followups = max(1, min(12, round(months * rate)))
    moments = sorted(_office_between(rng, since, now - dt.timedelta(hours=1)) for _ in range(n_followups)) \
        if since < now - dt.timedelta(hours=1) else []
    next_followup = _work_time(rng, (now + dt.timedelta(days=rng.randrange(1, 21))).date()) \
        if moments and rng.random() < 0.55 else None
    return moments, next_followup


def _create_batch(conn: sa.Connection, catalog: Catalog, ctx: Context, stories: list[Story], first: int) -> None:
    """A batch of customers: customers, contacts and follow-ups through the bulk path
    (runtime/bulk_insert.py), opportunities, contracts and money through the record
    service and the workflows."""
    planned = []
    rows: list[NewRow] = []
    for story in stories:
        moments, next_followup = _followup_moments(ctx, story)
        payload = _customer_payload(ctx, story, next_followup)
        # Reps may not set credit limits (role "sales": credit_limit read-only): a key
        # account's limit is entered by the sales director, on the owner's behalf.
        creator = ctx.staff["zhang.wei"] if "credit_limit" in payload else story.owner
        rows.append(NewRow(creator.principal, story.created, payload))
        planned.append((moments, next_followup))
    customer_ids = insert_records(conn, catalog, "customer", rows)
    ctx.count("customers", len(customer_ids))
    customers = [dict(row.payload, id=cid, version=1) for row, cid in zip(rows, customer_ids)]

    contact_rows = [_contact_rows(ctx, story, c["id"]) for story, c in zip(stories, customers)]
    ids = iter(insert_records(conn, catalog, "contact", [r for group in contact_rows for r in group]))
    contacts = [[dict(r.payload, id=next(ids)) for r in group] for group in contact_rows]
    ctx.count("contacts", sum(len(g) for g in contacts))

    followups: list[NewRow] = []
    for i, story in enumerate(stories):
        followups += _customer_story(conn, catalog, ctx, story, first + i, customers[i], contacts[i], *planned[i])
    insert_records(conn, catalog, "followup", followups)
    ctx.count("followups", len(followups))


def _customer_story(conn: sa.Connection, catalog: Catalog, ctx: Context, story: Story, index: int,
                    customer: dict[str, Any], contacts: list[dict[str, Any]], moments: list[dt.datetime],
                    next_followup: dt.datetime | None) -> list[NewRow]:
    """One customer's deals (through the record service) and its follow-ups (returned for the bulk path)."""
    rng, now = ctx.rng, ctx.now
    primary = contacts[0]
    ctx.converted[story.company.name] = (story, primary["name"], primary["mobile"], primary["email"])
    decision = next((c for c in contacts if c["is_decision_maker"]), primary)
    opportunities = _create_opportunities(conn, catalog, ctx, story, index, customer, contacts)

    contracts: list[tuple[dict[str, Any], dt.datetime]] = []
    for opp, _created, stage, lines, closed_at in opportunities:
        if stage == "won" and closed_at is not None:
            kind = "new" if not contracts else "add_on"
            name = f"{opp['name']}合同" if not story.company.english else f"{opp['name']} contract"
            contracts.append((_create_contract(conn, catalog, ctx, story, customer, decision, closed_at, lines,
                                               name, kind, opp), closed_at))
    if contracts and rng.random() < 0.35:  # an existing customer renews its maintenance
        first_signed = contracts[0][1]
        renew_at = first_signed + dt.timedelta(days=rng.randrange(200, 360))
        if renew_at < now - dt.timedelta(days=2):
            renew_at = _office_between(rng, renew_at, renew_at + dt.timedelta(days=1))
            lines = _bundle(ctx, MAINTENANCE, story.level)
            name = f"{story.company.short}{MAINTENANCE[0]}合同" if not story.company.english \
                else f"{story.company.short} {MAINTENANCE[1]}"
            contracts.append((_create_contract(conn, catalog, ctx, story, customer, decision, renew_at, lines,
                                               name, "renewal", None), renew_at))
    if contracts:
        ctx.at(min(c[1] for c in contracts) + dt.timedelta(minutes=30))
        update_record(conn, catalog, story.owner.principal, "customer", customer["id"],
                      {"version": customer["version"], "deal_status": "sold"})

    product_names = [p["name"] for p in ctx.products.values() if p["on_sale"]]
    out: list[NewRow] = []
    for i, moment in enumerate(moments):
        kind = _weighted(rng, FOLLOWUP_TYPES)
        contact = rng.choice(contacts)
        open_opps = [o for o in opportunities if o[1] <= moment and (o[4] is None or o[4] >= moment)]
        signed = [c for c, at in contracts if at <= moment]
        roll = rng.random()
        if open_opps and roll < 0.35:
            subject = {"entity": "opportunity", "id": rng.choice(open_opps)[0]["id"]}
        elif signed and roll < 0.45:
            subject = {"entity": "contract", "id": rng.choice(signed)["id"]}
        elif roll > 0.9:
            subject = {"entity": "contact", "id": contact["id"]}
        else:
            subject = {"entity": "customer", "id": customer["id"]}
        payload: dict[str, Any] = {
            "subject": subject, "type": kind, "contact": contact["id"],
            "content": _text(ctx, story.owner, kind, contact["name"], rng.choice(product_names)),
            "owner": story.owner.id, "department": story.owner.department_id,
        }
        if kind == "visit":
            loc = customer.get("address") or _location(ctx, story.company.city)
            payload["location"] = {"lat": loc["lat"], "lng": loc["lng"], "address": loc["address"]}
        if i == len(moments) - 1:
            if next_followup is not None:
                payload["next_followup_at"] = next_followup.isoformat()
        elif rng.random() < 0.4:
            payload["next_followup_at"] = _work_time(rng, (moment + dt.timedelta(days=rng.randrange(3, 15))).date()
                                                     ).isoformat()
        out.append(NewRow(story.owner.principal, moment, payload))
    return out


# ------------------------------------------------------------------ leads

def _create_leads(conn: sa.Connection, catalog: Catalog, ctx: Context, n: int) -> None:
    """Leads in every status; the converted ones are the person and company that became a customer."""
    rng, now = ctx.rng, ctx.now
    converted_pool = sorted(ctx.converted)
    rng.shuffle(converted_pool)
    followups: list[NewRow] = []
    for i in range(n):
        status = LEAD_STATUSES[i] if i < len(LEAD_STATUSES) else _weighted(rng, LEAD_STATUS_WEIGHTS)
        if status == "converted" and not converted_pool:
            status = "following"
        story: Story | None = None
        if status == "converted":
            story, name, mobile, email = ctx.converted[converted_pool.pop()]
            owner, city, english, company_name = story.owner, story.company.city, story.company.english, \
                story.company.name
            created = _office_between(rng, story.created - dt.timedelta(days=30), story.created - dt.timedelta(hours=1))
            local = email.split("@")[0]
        else:
            company = _new_company(ctx)
            owner = ctx.staff[_weighted(rng, OWNERS[company.city.region])]
            city, english, company_name = company.city, company.english, company.name
            age = {"new": 20, "following": 90, "invalid": 180, "void": 180}[status]
            created = _office_between(rng, now - dt.timedelta(days=age), now - dt.timedelta(hours=3))
            name, local, _ = _person(ctx, english)
            mobile, email = ctx.mobile(), ctx.email(local, company.domain)
        payload: dict[str, Any] = {
            "name": name, "company": company_name,
            "title": rng.choice(EN_JOB_TITLES if english else JOB_TITLES)[0],
            "mobile": mobile, "email": email,
            "source": _weighted(rng, SOURCES), "industry": rng.choice(INDUSTRY_WORDS)[1],
            "level": _weighted(rng, (("A", 1), ("B", 3), ("C", 2))),
            "address": _location(ctx, city)["address"],
            "owner": owner.id, "department": owner.department_id,
        }
        if story is not None:
            payload["industry"] = story.company.industry
            payload["level"] = story.level
            payload["remark"] = "已转化为客户" if not english else "Converted to a customer"
        if status == "invalid":
            payload["invalid_reason"] = rng.choice(INVALID_REASONS)
        elif status == "void":
            payload["invalid_reason"] = rng.choice(VOID_REASONS)
        elif status in ("new", "following") and rng.random() < 0.6:
            payload["next_followup_at"] = _work_time(rng, (now + dt.timedelta(days=rng.randrange(1, 14))).date()
                                                     ).isoformat()
        if rng.random() < 0.5:
            payload["wechat"] = f"{local.replace('.', '_')}{rng.randrange(100, 999)}"
        ctx.at(created)
        if status == "new":  # nothing ahead of it in the lead workflow: the bulk path
            lead = dict(payload, id=insert_records(conn, catalog, "lead", [NewRow(owner.principal, created, payload)])[0])
        else:
            lead = create_record(conn, catalog, owner.principal, "lead", payload)
        ctx.count("leads")
        if status != "new":  # statuses change through the lead_lifecycle workflow
            ctx.at(min(created + dt.timedelta(days=rng.randrange(1, 20)), now))
            if status == "void":  # voiding is a manager's call
                fire_transition(conn, catalog, ctx.staff["wang.jun"].principal, "lead", lead["id"], "void")
            else:
                fire_transition(conn, catalog, owner.principal, "lead", lead["id"], LEAD_MOVES[status])
        if status in ("following", "converted", "invalid"):
            last = now - dt.timedelta(hours=1) if status == "following" else created + dt.timedelta(days=20)
            for moment in sorted(_office_between(rng, created + dt.timedelta(hours=1), min(last, now))
                                 for _ in range(rng.randint(1, 3))):
                kind = _weighted(rng, (("call", 3), ("wechat", 2), ("email", 1)))
                followups.append(NewRow(owner.principal, moment, {
                    "subject": {"entity": "lead", "id": lead["id"]}, "type": kind,
                    "content": _text(ctx, owner, kind, name, rng.choice(list(ctx.products.values()))["name"]),
                    "owner": owner.id, "department": owner.department_id}))
    insert_records(conn, catalog, "followup", followups)
    ctx.count("followups", len(followups))


# ------------------------------------------------------------------ the public pool

RELEASE_REASONS = ("客户暂无采购计划", "多次联系未果，暂时放弃", "客户已选择竞争对手", "不在本人负责区域",
                   "联系人已离职，需重新开发", "No budget this year")


def _release_to_pool(conn: sa.Connection, catalog: Catalog, ctx: Context) -> None:
    """About one in twelve customers that never bought, at least three, put back into the
    default CRM's public pool by their owners, with a reason: through the `release` action,
    so their contacts and open opportunities go with them (and follow whoever claims them)."""
    from .pool.actions import release
    from .pool.config import pool_named

    pool = pool_named(catalog.mset, "default")
    if pool is None:
        return
    t = catalog.get("customer").table
    unsold = conn.execute(sa.select(t.c.id, t.c.owner).where(t.c.deal_status == "unsold", t.c.owner.is_not(None))
                          .order_by(t.c.id)).all()
    by_id = {s.id: s for s in ctx.staff.values()}
    chosen = [r for r in unsold if ctx.rng.random() < 1 / 12] or list(unsold[:3])
    if len(chosen) < 3:
        chosen += [r for r in unsold if r not in chosen][:3 - len(chosen)]
    for row in chosen:
        owner = by_id.get(row.owner)
        if owner is None:
            continue
        ctx.at(ctx.now - dt.timedelta(hours=ctx.rng.randrange(2, 72)))
        release(conn, catalog, owner.principal, "customer", row.id,
                {"pool": pool.name, "reason": ctx.rng.choice(RELEASE_REASONS)})
        ctx.count("pool_customers")


# ------------------------------------------------------------------ the entry point

ORDER = ("departments", "users", "products", "customers", "contacts", "leads", "opportunities", "contracts",
         "contract_lines", "receivable_plans", "receivables", "followups", "pool_customers")


def load_demo_data(rt: Runtime, *, customers: int = 2000, seed: int = 7) -> dict[str, int]:
    """Fill the default CRM with a demo company; the number of rows made per kind, or {}
    when demo data is there already. See the module docstring for what is made."""
    if customers < 1:
        raise BadRequest("customers must be at least 1.")
    rng = random.Random(seed)
    now = clock.utcnow().astimezone(dt.timezone.utc).replace(microsecond=0)
    founded = now - dt.timedelta(days=900)
    with _simulated_clock(founded) as sim:
        ctx = Context(rng=rng, now=now, sim=sim, staff={})
        with rt.engine.begin() as conn:
            if _already_loaded(conn):
                return {}
            catalog = rt.catalog(conn)
            missing = [e for e in REQUIRED_ENTITIES if e not in catalog.entities or catalog.entities[e].entity.archived]
            if missing:
                raise BadRequest("Demo data needs the default CRM (crm-default); missing entities: "
                                 + ", ".join(missing) + ".")
            conn.execute(systables.audit_log.insert().values(
                at=now, by=None, action=MARKER_ACTION, target="demo",
                detail={"seed": seed, "customers": customers, "status": "loading"}))
            _create_org(conn, ctx)
            _create_products(conn, catalog, ctx)

        stories = _plan_customers(ctx, customers)
        for start in range(0, len(stories), BATCH_SIZE):
            with rt.engine.begin() as conn:
                _create_batch(conn, rt.catalog(conn), ctx, stories[start:start + BATCH_SIZE], start)
        with rt.engine.begin() as conn:
            catalog = rt.catalog(conn)
            _create_leads(conn, catalog, ctx, max(len(LEAD_STATUSES), customers // 5))
            _release_to_pool(conn, catalog, ctx)
            summary = {k: ctx.counts.get(k, 0) for k in ORDER}
            a = systables.audit_log
            conn.execute(a.update().where(a.c.action == MARKER_ACTION).values(
                detail={"seed": seed, "customers": customers, "status": "done", "summary": summary}))
    # Other modules' demo data (office, sales targets…): one call each below this line,
    # adding their counts to `summary`.
    summary["sales_targets"] = load_demo_targets(rt)
    summary.update(load_office_demo(rt, seed=seed))
    return summary
