"""`make demo`: a realistic stream of complaints and staff work for every pack's demo branch.

Run it with `make run` going. It first posts 14 days of service volumes for every demo
branch and a burst of complaints, a quarter of them taken days ago so that their clocks
are already late; then, for the given minutes, it submits a steady stream over HTTP
(with an Idempotency-Key) and over Kafka (with a submission_id), now and then sends one
again to show that a retry finds the same complaint, and walks earlier complaints through
the life cycle as staff and customers would: acknowledge, investigate, hold and resume,
reassign, escalate, record compensation, decide (or answer on the spot, or find the
complaint not upheld), customer feedback (some unsatisfied, which reopens the case),
resolve, return visit, close. Every action is checked against the case's
``allowed_actions`` first; a 409 means "not now". The exit status is 1 when any call
failed (the summary's "errors").

    python deploy/local/demo.py [--minutes 2] [--rate 3] [--seed N]
                                [--intake URL] [--reporting URL] [--kafka HOST:PORT]

The decisions (what to submit for a pack, which action comes next for a case) are pure
functions of a seeded ``random.Random``, the time and the case's state, kept apart from the
I/O (``Demo``) so that they are unit-tested (tests/unit/test_demo_plan.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from itertools import cycle
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from services.intake.cases import TAKEN_AT_LIMIT, feedback_token  # noqa: E402
from services.intake.settings import IntakeSettings  # noqa: E402
from shared.auth.dev import DevCredentials  # noqa: E402
from shared.policy import ClockRule, PackRegistry, PolicyPack, load_packs  # noqa: E402
from shared.topics import DEFAULT_NAMESPACE, Topics  # noqa: E402

# ---------------------------------------------------------------------------------------
# Shares and timings of the stream
# ---------------------------------------------------------------------------------------

BURST_SIZE = 20
BURST_LATE_SHARE = 0.25
STREAM_LATE_SHARE = 0.05
KAFKA_SHARE = 1 / 3
REPLAY_SHARE = 0.06
EN_SHARE = 0.25
VOLUME_DAYS = 14
SEVERITY_WEIGHTS = {"normal": 80, "urgent": 17, "major": 3}
NOT_UPHELD_SHARE = 0.1
UNSATISFIED_SHARE = 0.15
HOLD_SHARE = 0.15
REASSIGN_SHARE = 0.08
ESCALATE_SHARE = 0.05
COMPENSATION_SHARE = 0.35
RETURN_VISIT_SHARE = 0.4
NOTE_SHARE = 0.3
DELIVERY_SHARE = 0.7
STEP_DELAY = (1.5, 5.0)  # seconds between two actions on one case
ROUTING_PATIENCE = 20.0  # seconds to wait for routing before investigating anyway
TOKEN_PATIENCE = 15.0  # seconds to wait for a survey token on the topic before computing it
IDLE_LIMIT = 60  # polls with nothing to do before a case is left alone
LATE_AGE_CAP = TAKEN_AT_LIMIT - timedelta(hours=12)

# Intake's action names (``allowed_actions``) and the paths that take them.
ACTION_PATHS: dict[str, str] = {
    "acknowledge": "acknowledge",
    "start_investigation": "investigation",
    "add_note": "notes",
    "escalate": "escalation",
    "hold": "hold",
    "resume": "resume",
    "communicate_decision": "decision",
    "answer_on_spot": "answer-on-spot",
    "mark_not_upheld": "not-upheld",
    "resolve": "resolution",
    "record_feedback": "feedback",
    "record_return_visit": "return-visits",
    "record_compensation": "compensation",
    "reassign": "reassignment",
    "record_delivery": "delivery",
    "close": "close",
}
FINISHED_STATUSES = frozenset({"closed", "not_upheld"})

# ---------------------------------------------------------------------------------------
# What each pack's customers complain about
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One realistic complaint, in Chinese and in English, with what the customer asks."""

    zh: str
    en: str
    request_zh: str
    request_en: str


@dataclass(frozen=True)
class Texts:
    """What staff write back, in the customer's language."""

    decision: tuple[str, str]
    resolution: tuple[str, str] = (
        "处理完毕，客户确认问题已解决。",
        "Done; the customer confirmed.",
    )
    on_spot: tuple[str, str] = (
        "已当面致歉并说明情况，客户表示接受。",
        "We apologised in person and explained; the customer accepted.",
    )
    not_upheld: tuple[str, str] = (
        "经核查记录，反映情况与事实不符，已向客户说明依据。",
        "The records show the complaint does not stand; we explained the evidence.",
    )


@dataclass(frozen=True)
class PackProfile:
    volume: tuple[int, int]  # services delivered per weekday
    unit: str
    weekend_factor: float
    channels: tuple[str, ...]
    customer_types: Mapping[str, int]
    places: tuple[str, ...]
    texts: Texts
    scenarios: Mapping[str, tuple[Scenario, ...]]
    companies: tuple[str, ...] = ()
    product_categories: frozenset[str] = frozenset()
    compensation: tuple[int, int] | None = None  # CNY range, for packs that compensate
    on_spot_share: float = 0.1
    on_spot_categories: frozenset[str] = frozenset()  # answered at once most of the time


S = Scenario

PROFILES: dict[str, PackProfile] = {
    "hotel": PackProfile(
        volume=(300, 500),
        unit="room nights",
        weekend_factor=1.2,
        channels=("phone", "walk_in", "email", "wechat", "web"),
        customer_types={"in_house_guest": 6, "departed_guest": 3, "member": 1},
        places=("1208 房间", "0716 房间", "大堂", "二楼自助餐厅", "健身房", "地下停车场"),
        compensation=(100, 800),
        on_spot_share=0.2,
        texts=Texts(
            decision=(
                "已为您免费升级房型并减免一晚房费，工程部已完成维修。",
                "We upgraded your room free of charge, waived one night and engineering "
                "completed the repair.",
            ),
        ),
        scenarios={
            "service-attitude": (
                S(
                    "办理入住时前台接待员态度冷淡，排队二十分钟无人解释原因。",
                    "The front desk clerk was dismissive at check-in; we queued twenty "
                    "minutes without any explanation.",
                    "希望酒店给予解释并道歉",
                    "An apology and an explanation.",
                ),
                S(
                    "礼宾部员工对行李寄存的询问爱答不理，还催促我们离开。",
                    "The concierge ignored our luggage question and hurried us away.",
                    "请对该员工进行培训",
                    "Please retrain the staff member.",
                ),
            ),
            "room-cleanliness": (
                S(
                    "入住时发现浴室地面有头发，毛巾有污渍，床单没有更换。",
                    "Hair on the bathroom floor, stained towels and unchanged sheets when we "
                    "checked in.",
                    "立即重新打扫并更换床品",
                    "Clean the room again and change the linen now.",
                ),
                S(
                    "预订的是无烟房，房间里却有明显烟味。",
                    "We booked a non-smoking room but it smells strongly of smoke.",
                    "请给我们换一间无烟房",
                    "Move us to a real non-smoking room.",
                ),
            ),
            "food-beverage": (
                S(
                    "早餐煎蛋是凉的，咖啡机坏了半小时没人处理。",
                    "Breakfast eggs were cold and the coffee machine was broken for half an "
                    "hour with nobody fixing it.",
                    "希望改进早餐服务",
                    "Improve the breakfast service.",
                ),
                S(
                    "客房送餐迟到一小时，菜品与点单不符。",
                    "Room service came an hour late and was not what we ordered.",
                    "退还送餐费用",
                    "Refund the room-service charge.",
                ),
            ),
            "facilities": (
                S(
                    "房间空调不制冷，已报修两次仍未修好。",
                    "The air conditioning does not cool; reported twice and still not fixed.",
                    "今晚前修好或换房",
                    "Fix it tonight or move us to another room.",
                ),
                S(
                    "淋浴热水时有时无，水压很低。",
                    "Hot water in the shower keeps cutting out and the pressure is very low.",
                    "尽快维修",
                    "Please repair it today.",
                ),
            ),
            "billing": (
                S(
                    "退房账单多收了一晚房费和两瓶迷你吧饮料。",
                    "The checkout bill charged an extra night and two minibar drinks we "
                    "never took.",
                    "退还多收的费用",
                    "Refund the overcharge.",
                ),
            ),
        },
    ),
    "manufacturing": PackProfile(
        volume=(40, 80),
        unit="lots shipped",
        weekend_factor=0.3,
        channels=("email", "phone", "fax", "letter"),
        customer_types={"dealer": 2, "end_customer": 3},
        places=("客户来料检验区", "客户 SMT 产线", "Incoming inspection", "成品仓库"),
        companies=("华澜精密电子有限公司", "Northgate Components Ltd", "瑞丰汽车配件有限公司"),
        product_categories=frozenset({"quality"}),
        compensation=(2_000, 50_000),
        texts=Texts(
            decision=(
                "经 8D 分析为电镀工序参数漂移，已补发良品，并加严出货检验。",
                "8D analysis found a plating parameter drift; replacements have shipped and "
                "outgoing inspection is tightened.",
            ),
        ),
        scenarios={
            "quality": (
                S(
                    "贵司交运的连接器端子镀层起泡，来料检验不良率约 3%。",
                    "Connector terminals from your last shipment show blistered plating; "
                    "about 3 % failed incoming inspection.",
                    "提供 8D 报告并补发良品",
                    "An 8D report and replacement parts.",
                ),
                S(
                    "注塑外壳尺寸超差，装配时卡扣断裂，怀疑模具磨损。",
                    "Moulded housings are out of tolerance and the clips break at assembly; "
                    "we suspect mould wear.",
                    "全数挑选并赔偿停线损失",
                    "Sort the stock and cover our line-stop losses.",
                ),
            ),
            "non-quality": (
                S(
                    "订单发错料号，数量不符，影响我方产线排程。",
                    "The order was shipped with the wrong part number and short quantity, "
                    "disrupting our line schedule.",
                    "尽快补发正确料号",
                    "Ship the correct parts immediately.",
                ),
                S(
                    "售后服务人员到场后态度生硬，也没有按约定时间处理。",
                    "Your after-sales engineer arrived late and was rude to our staff.",
                    "更换服务人员",
                    "Send another service engineer.",
                ),
            ),
        },
    ),
    "testing-lab": PackProfile(
        volume=(60, 150),
        unit="samples tested",
        weekend_factor=0.2,
        channels=("letter", "email", "phone", "walk_in"),
        customer_types={"end_customer": 1},
        places=("样品接收室", "现场采样点", "报告发放窗口"),
        companies=("绿源环保科技有限公司", "Harbour Water Services", "城东污水处理厂"),
        texts=Texts(
            decision=(
                "已对留样复检并重新出具报告，差异原因为样品运输温度超标。",
                "The retained sample was retested and a corrected report issued; the cause "
                "was a transport temperature excursion.",
            ),
        ),
        scenarios={
            "test-result-objection": (
                S(
                    "报告中水样 COD 数值明显偏高，与我方自检结果相差一倍，怀疑采样或运输有问题。",
                    "The COD value in the report is twice our own measurement; we suspect a "
                    "sampling or transport problem.",
                    "申请留样复检",
                    "Please retest the retained sample.",
                ),
            ),
            "general-service": (
                S(
                    "检测报告发放比约定晚了五个工作日，影响项目验收。",
                    "The test report was issued five working days late, delaying our project "
                    "acceptance.",
                    "说明原因并加快出具",
                    "Explain the delay and speed up.",
                ),
                S(
                    "采样人员未按约定时间到场，也没有提前通知。",
                    "The sampling team did not turn up at the agreed time and gave no notice.",
                    "重新安排采样",
                    "Rebook the sampling.",
                ),
                S(
                    "发票开具错误，抬头与合同不符。",
                    "The invoice was issued to the wrong company name.",
                    "重开发票",
                    "Reissue the invoice.",
                ),
            ),
            "hard-case": (
                S(
                    "与业务室沟通报告更正已一个月，始终没有结果。",
                    "We have asked for a report correction for a month without result.",
                    "请领导出面协调",
                    "Please have management step in.",
                ),
            ),
            "satisfaction-survey": (
                S(
                    "满意度调查中反映：实验室前台电话经常无人接听。",
                    "From the satisfaction survey: nobody answers the lab's reception phone.",
                    "改进电话接听",
                    "Answer the phone.",
                ),
            ),
        },
    ),
    "it-services": PackProfile(
        volume=(80, 200),
        unit="service tickets",
        weekend_factor=0.3,
        channels=("phone", "email", "web", "wechat"),
        customer_types={"end_customer": 1},
        places=("客户机房", "客户办公室 5F", "远程"),
        companies=("星河物流有限公司", "Bluebay Trading Co.", "明德中学"),
        texts=Texts(
            decision=(
                "工程师已现场排查并更换故障设备，服务已恢复，另赠送一个月免费巡检。",
                "An engineer replaced the faulty device on site; service is restored and we "
                "add a month of free inspections.",
            ),
        ),
        scenarios={
            "service-request": (
                S(
                    "需要工程师上门为新办公室的 20 台电脑配置网络和打印机。",
                    "We need an engineer on-site to set up network and printers for 20 PCs "
                    "in our new office.",
                    "本周内安排",
                    "Please book it this week.",
                ),
            ),
            "complaint": (
                S(
                    "工程师处理后问题反复出现，且没有按承诺回电。",
                    "The engineer's fix did not hold and he never called back as promised.",
                    "更换工程师并彻底解决",
                    "Send someone else and fix it for good.",
                ),
            ),
            "fault": (
                S(
                    "公司网站自今早 9 点起无法访问，显示 502 错误。",
                    "Our company website has been down since 9 am with a 502 error.",
                    "立即恢复",
                    "Restore it now.",
                ),
                S(
                    "ERP 系统登录非常缓慢，月底结账无法进行。",
                    "The ERP system is so slow that we cannot close the month.",
                    "今天内解决",
                    "Fix it today.",
                ),
            ),
            "new-requirement": (
                S(
                    "希望在现有 OA 中增加移动端审批功能。",
                    "We would like mobile approvals added to the existing OA suite.",
                    "请报价",
                    "Please send a quote.",
                ),
            ),
            "inspection-finding": (
                S(
                    "巡检发现机房 UPS 电池老化，告警长期未处理。",
                    "Inspection found aged UPS batteries in the server room; the alarms were "
                    "never handled.",
                    "更换电池",
                    "Replace the batteries.",
                ),
            ),
        },
    ),
    "property": PackProfile(
        volume=(150, 300),
        unit="service requests",
        weekend_factor=1.0,
        channels=("phone", "walk_in", "wechat", "web", "suggestion_box"),
        customer_types={"owner": 1},
        places=("3 号楼 2 单元 1502", "7 号楼 801", "地下车库 B2", "小区东门", "会所"),
        texts=Texts(
            decision=(
                "维修班组已完成修复，并承担楼下业主天花板的修复费用。",
                "The repair team fixed the leak and we will pay for the neighbour's ceiling.",
            ),
        ),
        scenarios={
            "service-attitude": (
                S(
                    "物业前台对业主报事态度敷衍，推说不归他们管。",
                    "The property desk brushed me off and said my report was not their job.",
                    "要求道歉",
                    "An apology.",
                ),
            ),
            "professionalism": (
                S(
                    "保安不认识业主，多次盘问却不出示工作证。",
                    "Security guards questioned me repeatedly without showing any ID.",
                    "加强培训",
                    "Train the guards.",
                ),
            ),
            "service-efficiency": (
                S(
                    "电梯异响报修三天无人跟进。",
                    "I reported a noisy lift three days ago and nobody has followed up.",
                    "尽快检修电梯",
                    "Inspect the lift now.",
                ),
            ),
            "property-service": (
                S(
                    "小区垃圾清运不及时，楼道异味严重。",
                    "Rubbish is not collected on time and the stairwell smells.",
                    "每日清运",
                    "Collect it daily.",
                ),
            ),
            "house-quality": (
                S(
                    "收房后发现卫生间楼板渗水，楼下天花板出现水渍。",
                    "Water leaks through my bathroom floor slab into the flat below.",
                    "尽快修复并赔偿",
                    "Repair it and cover the damage.",
                ),
                S(
                    "主卧外墙窗边下雨渗水，墙面发霉。",
                    "Rain seeps in around the bedroom window and the wall is going mouldy.",
                    "做防水处理",
                    "Waterproof the wall.",
                ),
            ),
            "design-defect": (
                S(
                    "厨房排烟管道位置设计不合理，油烟倒灌。",
                    "The kitchen flue is badly placed and fumes blow back into the flat.",
                    "更改排烟设计",
                    "Redesign the flue.",
                ),
            ),
            "repair": (
                S(
                    "阳台水管爆裂漏水，需要紧急维修。",
                    "A burst pipe on the balcony is leaking; urgent repair needed.",
                    "马上派人",
                    "Send someone now.",
                ),
                S(
                    "地下车库照明年度维保没做，多处灯不亮。",
                    "The car-park lighting missed its annual maintenance; many lights are out.",
                    "尽快维修",
                    "Fix the lights.",
                ),
            ),
            "house-dispute": (
                S(
                    "车位产权与购房合同约定不符。",
                    "The parking space title does not match my purchase contract.",
                    "按合同办理",
                    "Honour the contract.",
                ),
            ),
            "suggestion": (
                S(
                    "建议增加小区绿化带的保洁频次。",
                    "Please clean the green belts of the estate more often.",
                    "采纳建议",
                    "Consider it.",
                ),
            ),
        },
    ),
    "fitness-club": PackProfile(
        volume=(400, 900),
        unit="member visits",
        weekend_factor=1.4,
        channels=("walk_in", "wechat", "phone", "suggestion_box", "sms"),
        customer_types={"member": 1},
        places=("器械区", "动感单车房", "女更衣室", "前台", "泳池"),
        on_spot_share=0.2,
        texts=Texts(
            decision=(
                "已退还重复扣款并赠送两节私教课，相关设备已维修。",
                "The duplicate charge is refunded, two free PT sessions added and the "
                "equipment repaired.",
            ),
        ),
        scenarios={
            "coaching": (
                S(
                    "私教课多次迟到，课程内容与购买时介绍不符。",
                    "My personal trainer was late several times and the sessions are not what "
                    "was sold to me.",
                    "更换教练",
                    "Change my trainer.",
                ),
            ),
            "front-desk": (
                S(
                    "前台办理寄存时态度不耐烦，水吧饮品价格与价目表不一致。",
                    "The front desk was impatient and the juice bar charged more than the "
                    "price list.",
                    "退还差价",
                    "Refund the difference.",
                ),
            ),
            "billing": (
                S(
                    "续卡时被重复扣费 3600 元。",
                    "I was charged twice (3,600 CNY) when renewing my membership.",
                    "退还重复扣款",
                    "Refund the duplicate charge.",
                ),
            ),
            "membership": (
                S(
                    "会籍顾问承诺的免费私教课一直没有兑现。",
                    "The free PT sessions promised by the membership consultant were never given.",
                    "兑现承诺",
                    "Keep the promise.",
                ),
            ),
            "cleanliness": (
                S(
                    "女更衣室淋浴间地漏堵塞，地面积水有异味。",
                    "The shower drain in the women's changing room is blocked and smells.",
                    "马上清理",
                    "Clean it now.",
                ),
            ),
            "facilities": (
                S(
                    "12 号跑步机皮带打滑，挂故障牌一周了还没修。",
                    "Treadmill no. 12 slips; it has had an out-of-order sign for a week.",
                    "尽快维修",
                    "Repair it.",
                ),
            ),
            "injury-incident": (
                S(
                    "动感单车课上车把松脱，导致手腕扭伤。",
                    "The handlebar came loose in spin class and I was injured (sprained wrist).",
                    "承担医药费",
                    "Cover my medical costs.",
                ),
            ),
        },
    ),
    "furniture": PackProfile(
        volume=(30, 90),
        unit="deliveries",
        weekend_factor=1.5,
        channels=("phone", "wechat", "web", "email"),
        customer_types={"end_customer": 4, "dealer": 1},
        places=("客户家中", "门店展厅", "Customer's home", "经销商仓库"),
        companies=("美居家具经销部", "Oakline Interiors"),
        product_categories=frozenset({"product-quality"}),
        compensation=(200, 3_000),
        on_spot_categories=frozenset({"grievance"}),
        texts=Texts(
            decision=(
                "为您免费更换新品并上门安装，另补偿 300 元购物券。",
                "We will replace the item free of charge with installation and add a "
                "300 CNY voucher.",
            ),
        ),
        scenarios={
            "grievance": (
                S(
                    "门店导购对退换货政策解释不清，让我白跑一趟。",
                    "The store assistant could not explain the return policy and I made a "
                    "wasted trip.",
                    "说明政策",
                    "Explain the policy.",
                ),
            ),
            "suggestion": (
                S(
                    "建议官网增加产品实物尺寸图。",
                    "Please add real dimension drawings to the product pages.",
                    "采纳建议",
                    "Consider it.",
                ),
            ),
            "product-quality": (
                S(
                    "新买的实木餐桌桌面开裂，使用不到一个月。",
                    "The new solid-wood dining table top cracked within a month.",
                    "更换新品",
                    "Replace the table.",
                ),
                S(
                    "沙发坐垫海绵塌陷，扶手接缝开线。",
                    "The sofa cushions have sagged and the armrest seams have split.",
                    "上门维修或退货",
                    "Repair at home or take it back.",
                ),
            ),
            "appearance-packaging": (
                S(
                    "衣柜送到时外包装破损，柜门有明显划痕。",
                    "The wardrobe arrived with torn packaging and deep scratches on the doors.",
                    "更换柜门",
                    "Replace the doors.",
                ),
            ),
            "service-quality": (
                S(
                    "送货司机没有按预约时间送货，还拒绝搬运上楼。",
                    "The delivery driver came outside the booked slot and refused to carry "
                    "the sofa upstairs.",
                    "给个说法",
                    "An explanation.",
                ),
                S(
                    "业务员下单时写错颜色，订单需要重做。",
                    "The salesperson entered the wrong colour and the order must be redone.",
                    "加急重做",
                    "Rush the new order.",
                ),
            ),
        },
    ),
}

DEFAULT_PROFILE = PackProfile(
    volume=(50, 200),
    unit="services",
    weekend_factor=1.0,
    channels=("phone", "email", "web"),
    customer_types={"end_customer": 1},
    places=("营业网点", "Service point"),
    texts=Texts(decision=("已按客户要求处理完毕。", "Handled as the customer asked.")),
    scenarios={},
)

ZH_CUSTOMERS = (
    ("陈思远", "chen.siyuan"),
    ("林晓雯", "lin.xiaowen"),
    ("黄子豪", "huang.zihao"),
    ("吴雨桐", "wu.yutong"),
    ("刘嘉怡", "liu.jiayi"),
    ("赵明轩", "zhao.mingxuan"),
    ("孙若琳", "sun.ruolin"),
    ("周浩然", "zhou.haoran"),
    ("郑可欣", "zheng.kexin"),
    ("何俊杰", "he.junjie"),
    ("许诗涵", "xu.shihan"),
    ("高宇航", "gao.yuhang"),
)
EN_CUSTOMERS = (
    ("Emily Carter", "emily.carter"),
    ("James Whitfield", "james.whitfield"),
    ("Sophie Laurent", "sophie.laurent"),
    ("Daniel Okafor", "daniel.okafor"),
    ("Hannah Schmidt", "hannah.schmidt"),
    ("Ravi Menon", "ravi.menon"),
    ("Olivia Bennett", "olivia.bennett"),
    ("Lucas Moreau", "lucas.moreau"),
)

# ---------------------------------------------------------------------------------------
# Planning submissions (pure)
# ---------------------------------------------------------------------------------------


class Ending(StrEnum):
    """How the first handling round ends."""

    DECISION = "decision"
    ON_SPOT = "on_spot"
    NOT_UPHELD = "not_upheld"


@dataclass(frozen=True)
class CaseScript:
    """What will happen to a case, decided when it is submitted."""

    ending: Ending = Ending.DECISION
    unsatisfied_first: bool = False
    hold: bool = False
    reassign: bool = False
    escalate: bool = False
    compensation: bool = False
    delivery: bool = False
    return_visit: bool = False
    note: bool = False


@dataclass(frozen=True)
class LateTarget:
    """A clock that a complaint taken ``min_age`` ago has already missed."""

    clock: str
    min_age: timedelta
    categories: tuple[str, ...]
    customer_types: tuple[str, ...]
    severities: tuple[str, ...]


@dataclass(frozen=True)
class PlannedSubmission:
    pack: str
    branch_id: str
    category: str
    severity: str
    language: str
    body: dict[str, Any]  # the request body, without submission_id
    key: str  # Idempotency-Key (HTTP) or submission_id (Kafka)
    via: str  # "http" or "kafka"
    replay: bool  # send it again later, to show idempotency
    script: CaseScript
    late_clock: str | None = None
    taken_at: datetime | None = None

    def kafka_message(self) -> dict[str, Any]:
        return {**self.body, "submission_id": self.key}


@dataclass(frozen=True)
class VolumePlan:
    branch_id: str
    day: date
    services: int
    unit: str


def profile_of(pack: PolicyPack) -> PackProfile:
    return PROFILES.get(pack.pack, DEFAULT_PROFILE)


def demo_branch(pack: PolicyPack) -> str:
    """The pack's ``<pack>-demo`` branch (its first branch if it has none)."""
    wanted = f"{pack.pack}-demo"
    return next((b.id for b in pack.branches if b.id == wanted), pack.branches[0].id)


def _timezone(pack: PolicyPack, branch_id: str) -> ZoneInfo:
    branch = next(b for b in pack.branches if b.id == branch_id)
    return ZoneInfo(branch.timezone)


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def plan_volumes(
    registry: PackRegistry, today: date, rng: random.Random, days: int = VOLUME_DAYS
) -> list[VolumePlan]:
    """Services delivered per day, for the ``days`` days up to ``today``, per demo branch."""
    plans: list[VolumePlan] = []
    for name in sorted(registry.packs):
        pack = registry.packs[name]
        profile = profile_of(pack)
        for back in range(days - 1, -1, -1):
            day = today - timedelta(days=back)
            low, high = profile.volume
            factor = profile.weekend_factor if day.weekday() >= 5 else 1.0
            services = max(0, round(rng.randint(low, high) * factor))
            plans.append(VolumePlan(demo_branch(pack), day, services, profile.unit))
    return plans


def _clock_min_age(clock: ClockRule) -> timedelta | None:
    """How long ago a complaint must have been taken for this clock to be past due.

    Working-day clocks get a day of margin for a weekend in between; a holiday week may
    still leave such a complaint on time."""
    if clock.target_hours is not None:
        return timedelta(hours=clock.target_hours)
    if clock.working_days is not None:
        return timedelta(days=clock.working_days + 2)
    if clock.working_hours is not None:
        return timedelta(hours=clock.working_hours * 3 + 48)
    return None


def late_targets(pack: PolicyPack) -> list[LateTarget]:
    """The pack's deadline clocks that start at receipt and that a complaint taken at most
    ``LATE_AGE_CAP`` ago can already have missed."""
    targets: list[LateTarget] = []
    for clock in pack.clocks:
        if clock.starts_on != "ComplaintReceived" or clock.return_visit or clock.recurrence:
            continue
        age = _clock_min_age(clock)
        if age is None or age + timedelta(hours=1) > LATE_AGE_CAP:
            continue
        targets.append(
            LateTarget(
                clock=clock.id,
                min_age=age,
                categories=clock.categories or tuple(c.code for c in pack.categories),
                customer_types=tuple(t.value for t in clock.customer_types),
                severities=tuple(s.value for s in clock.severities),
            )
        )
    return targets


def late_age(target: LateTarget, rng: random.Random) -> timedelta:
    """1–3 days back, or just past the clock's target when that is longer (capped)."""
    low = max(timedelta(days=1), target.min_age + timedelta(hours=1))
    high = min(max(low + timedelta(hours=4), timedelta(days=3)), LATE_AGE_CAP)
    return low + (high - low) * rng.random()


def plan_script(pack: PolicyPack, category: str, severity: str, rng: random.Random) -> CaseScript:
    """The case's story: how it ends, and what happens on the way."""
    profile = profile_of(pack)
    on_spot = 0.8 if category in profile.on_spot_categories else profile.on_spot_share
    draw = rng.random()
    if draw < on_spot:
        ending = Ending.ON_SPOT
    elif draw < on_spot + NOT_UPHELD_SHARE:
        ending = Ending.NOT_UPHELD
    else:
        ending = Ending.DECISION
    major = severity == "major"
    return CaseScript(
        ending=ending,
        unsatisfied_first=rng.random() < UNSATISFIED_SHARE,
        hold=rng.random() < HOLD_SHARE,
        reassign=rng.random() < REASSIGN_SHARE,
        escalate=rng.random() < (0.5 if major else ESCALATE_SHARE),
        compensation=profile.compensation is not None
        and ending is not Ending.NOT_UPHELD
        and rng.random() < COMPENSATION_SHARE,
        delivery=category in profile.product_categories and rng.random() < DELIVERY_SHARE,
        return_visit=rng.random() < RETURN_VISIT_SHARE,
        note=rng.random() < NOTE_SHARE,
    )


def _scenario(pack: PolicyPack, category: str, rng: random.Random) -> Scenario:
    choices = profile_of(pack).scenarios.get(category)
    if choices:
        return rng.choice(choices)
    label = pack.category(category)
    zh = label.label.zh if label else category
    en = label.label.en if label else category
    return Scenario(
        f"关于「{zh}」的投诉：客户反映的问题至今未得到处理。",
        f"Complaint about {en.lower()}: the customer's problem has still not been handled.",
        "尽快处理并回复",
        "Please handle it and reply.",
    )


def _customer(
    pack: PolicyPack, language: str, customer_type: str, rng: random.Random
) -> dict[str, Any]:
    name, local = rng.choice(EN_CUSTOMERS if language == "en" else ZH_CUSTOMERS)
    customer: dict[str, Any] = {"name": name, "type": customer_type, "language": language}
    if rng.random() < 0.9:
        customer["phone"] = f"+86 139 {rng.randint(0, 9999):04d} {rng.randint(0, 9999):04d}"
    if rng.random() < 0.7:
        customer["email"] = f"{local}{rng.randint(1, 99)}@example.com"
    companies = profile_of(pack).companies
    if companies and customer_type in ("dealer", "end_customer") and rng.random() < 0.8:
        customer["company"] = rng.choice(companies)
    return customer


def _product(rng: random.Random, taken: datetime) -> dict[str, Any]:
    product: dict[str, Any] = {
        "order_no": f"PO-{rng.randint(10000, 99999)}",
        "lot_no": f"L{rng.randint(2400, 2499)}-{rng.randint(1, 40):02d}",
        "quantity": rng.choice((1, 2, 50, 200, 1000, 5000)),
        "delivery_date": (taken - timedelta(days=rng.randint(3, 40))).date().isoformat(),
    }
    if rng.random() < 0.2:
        product["defective_quantity_undetermined"] = True
    else:
        product["defective_quantity"] = max(1, product["quantity"] * rng.randint(1, 8) // 100)
    return product


def _first_contact(pack: PolicyPack, rng: random.Random) -> str | None:
    takers = pack.candidates(pack.triage_department)
    return rng.choice(takers).id if takers and rng.random() < 0.7 else None


def submission_body(
    pack: PolicyPack,
    rng: random.Random,
    now: datetime,
    *,
    category: str | None = None,
    customer_type: str | None = None,
    severity: str | None = None,
    taken_at: datetime | None = None,
) -> dict[str, Any]:
    """A complaint as the pack's demo branch would submit it (``SubmitComplaint`` shape)."""
    profile = profile_of(pack)
    branch_id = demo_branch(pack)
    zone = _timezone(pack, branch_id)
    category = category or rng.choice(pack.categories).code
    language = "en" if rng.random() < EN_SHARE else "zh"
    scenario = _scenario(pack, category, rng)
    taken = taken_at or now
    body: dict[str, Any] = {
        "branch_id": branch_id,
        "channel": rng.choice(profile.channels),
        "customer": _customer(
            pack, language, customer_type or _weighted(rng, profile.customer_types), rng
        ),
        "event_time": (taken - timedelta(hours=rng.uniform(0.5, 30)))
        .astimezone(zone)
        .isoformat(timespec="seconds"),
        "event_place": rng.choice(profile.places),
        "description": scenario.en if language == "en" else scenario.zh,
        "customer_request": scenario.request_en if language == "en" else scenario.request_zh,
        "category": category,
        "severity": severity or _weighted(rng, SEVERITY_WEIGHTS),
        "region": "foreign" if language == "en" else "domestic",
    }
    staff = _first_contact(pack, rng)
    if staff is not None:
        body["first_contact_staff"] = staff
    if category in profile.product_categories:
        body["product"] = _product(rng, taken)
    if rng.random() < 0.2:
        body["attachments"] = [
            {
                "uri": f"https://files.example.com/{branch_id}/{rng.getrandbits(40):010x}.jpg",
                "name": "现场照片.jpg" if language == "zh" else "photo.jpg",
                "content_type": "image/jpeg",
                "size_bytes": rng.randint(80_000, 2_500_000),
            }
        ]
    if taken_at is not None:
        body["taken_at"] = taken_at.astimezone(zone).isoformat(timespec="seconds")
    return body


def plan_submission(
    pack: PolicyPack,
    rng: random.Random,
    now: datetime,
    *,
    run_id: str,
    seq: int,
    late: bool = False,
) -> PlannedSubmission:
    """One complaint for the pack's demo branch; ``late`` ones are taken long enough ago
    that one of the pack's clocks is already past due (when the pack has such a clock)."""
    targets = late_targets(pack) if late else []
    target = rng.choice(targets) if targets else None
    taken_at: datetime | None = None
    fixed: dict[str, str | None] = {}
    if target is not None:
        taken_at = now - late_age(target, rng)
        fixed = {
            "category": rng.choice(target.categories),
            "customer_type": rng.choice(target.customer_types) if target.customer_types else None,
            "severity": rng.choice(target.severities) if target.severities else None,
        }
    body = submission_body(pack, rng, now, taken_at=taken_at, **fixed)
    return PlannedSubmission(
        pack=pack.pack,
        branch_id=body["branch_id"],
        category=body["category"],
        severity=body["severity"],
        language=body["customer"]["language"],
        body=body,
        key=f"demo-{run_id}-{seq:05d}",
        via="kafka" if rng.random() < KAFKA_SHARE else "http",
        replay=rng.random() < REPLAY_SHARE,
        script=plan_script(pack, body["category"], body["severity"], rng),
        late_clock=target.clock if target else None,
        taken_at=taken_at,
    )


def _sorted_packs(registry: PackRegistry) -> list[PolicyPack]:
    return [registry.packs[name] for name in sorted(registry.packs)]


def plan_burst(
    registry: PackRegistry,
    rng: random.Random,
    now: datetime,
    *,
    run_id: str,
    size: int = BURST_SIZE,
    late_share: float = BURST_LATE_SHARE,
) -> list[PlannedSubmission]:
    """The opening burst: spread over every demo branch, ``late_share`` of it late."""
    packs = _sorted_packs(registry)
    late_packs = [p for p in packs if late_targets(p)]
    late_count = round(size * late_share) if late_packs else 0
    late_slots = set(rng.sample(range(size), late_count))
    rng.shuffle(packs)
    rng.shuffle(late_packs)
    any_pack: Iterator[PolicyPack] = cycle(packs)
    late_pack: Iterator[PolicyPack] = cycle(late_packs)
    return [
        plan_submission(
            next(late_pack) if seq in late_slots else next(any_pack),
            rng,
            now,
            run_id=run_id,
            seq=seq,
            late=seq in late_slots,
        )
        for seq in range(size)
    ]


def plan_stream_item(
    registry: PackRegistry,
    rng: random.Random,
    now: datetime,
    *,
    run_id: str,
    seq: int,
    late_share: float = STREAM_LATE_SHARE,
) -> PlannedSubmission:
    """One complaint of the steady stream, for a branch drawn at random."""
    pack = rng.choice(_sorted_packs(registry))
    late = rng.random() < late_share and bool(late_targets(pack))
    return plan_submission(pack, rng, now, run_id=run_id, seq=seq, late=late)


# ---------------------------------------------------------------------------------------
# Walking a case through its life cycle (pure)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSnapshot:
    """What ``GET /v1/complaints/{no}`` says of a case, as far as the next step needs."""

    status: str
    round: int
    allowed: frozenset[str]
    assignee: str | None = None
    department: str | None = None
    owner: str | None = None
    reassign_to: str | None = None  # someone the case could move to, if anyone
    waited: float = 0.0  # seconds since the demo submitted it


def reassign_target(pack: PolicyPack, department: str | None, assignee: str | None) -> str | None:
    """Another available member of the case's department, if it has one and someone may
    approve the move."""
    if department is None or not pack.has_department(department):
        return None
    if not any(s.approves_reassignment for s in pack.staff):
        return None
    others = sorted(s.id for s in pack.candidates(department) if s.id != assignee)
    return others[0] if others else None


def snapshot(view: Mapping[str, Any], pack: PolicyPack, waited: float) -> CaseSnapshot:
    department = view.get("department")
    assignee = view.get("assignee_id")
    return CaseSnapshot(
        status=view["status"],
        round=view["round"],
        allowed=frozenset(view["allowed_actions"]),
        assignee=assignee,
        department=department,
        owner=view.get("first_contact_staff"),
        reassign_to=reassign_target(pack, department, assignee),
        waited=waited,
    )


def done_marker(action: str, round_: int) -> str:
    """What records that ``action`` was done: feedback once per round, the rest once."""
    return f"{action}@{round_}" if action == "record_feedback" else action


def _ending_action(script: CaseScript, snap: CaseSnapshot) -> str:
    if script.ending is Ending.NOT_UPHELD and snap.round == 1:
        return "mark_not_upheld"
    return "communicate_decision"


def _pending(wants: Mapping[str, bool], done: frozenset[str]) -> list[str]:
    """The wanted actions not done yet, in order."""
    return [action for action, want in wants.items() if want and action not in done]


def _extras(script: CaseScript, snap: CaseSnapshot, done: frozenset[str]) -> list[str]:
    """The side steps while investigating, each at most once (most only in round 1)."""
    first_round = snap.round == 1
    wants = {
        "add_note": script.note and first_round,
        "hold": script.hold and first_round,
        "reassign": script.reassign and first_round and snap.reassign_to is not None,
        "escalate": script.escalate and first_round,
        "record_compensation": script.compensation,
    }
    return _pending(wants, done)


def _feedback(snap: CaseSnapshot, done: frozenset[str]) -> list[str]:
    return [] if done_marker("record_feedback", snap.round) in done else ["record_feedback"]


def _waiting(script: CaseScript, snap: CaseSnapshot, done: frozenset[str]) -> list[str]:
    """Received, not yet routed: answer on the spot, acknowledge, or (routing being slow)
    start investigating anyway."""
    wants = {
        "answer_on_spot": script.ending is Ending.ON_SPOT and snap.round == 1,
        "acknowledge": True,
        "start_investigation": snap.waited >= ROUTING_PATIENCE,
    }
    return _pending(wants, done)


def _answered(script: CaseScript, snap: CaseSnapshot, done: frozenset[str]) -> list[str]:
    """Replied or answered on the spot: compensation (with the answer, a voucher), the
    repaired product's delivery, then the customer's feedback."""
    wants = {
        "record_compensation": script.compensation,
        "record_delivery": script.delivery and snap.status == "replied",
    }
    return _pending(wants, done) + _feedback(snap, done)


def _closing(script: CaseScript, snap: CaseSnapshot, done: frozenset[str]) -> list[str]:
    """After the customer's feedback: resolve, visit again, close."""
    if snap.status == "feedback_received":
        return ["resolve"]
    visit = snap.status == "resolved" and script.return_visit
    return [*_pending({"record_return_visit": visit}, done), "close"]


def _wanted(script: CaseScript, snap: CaseSnapshot, done: frozenset[str]) -> list[str]:
    """The actions that would move the case on, best first (not yet filtered by allowed)."""
    status = snap.status
    if status == "on_hold":
        return ["resume"]
    if status in ("received", "acknowledged"):
        return _waiting(script, snap, done)
    if status in ("assigned", "reopened"):
        return ["start_investigation"]
    if status in ("investigating", "escalated"):
        return [*_extras(script, snap, done), _ending_action(script, snap)]
    if status in ("replied", "answered_on_spot"):
        return _answered(script, snap, done)
    if status == "not_upheld":
        return _feedback(snap, done)
    if status in ("feedback_received", "resolved", "return_visited"):
        return _closing(script, snap, done)
    return []


def next_step(script: CaseScript, snap: CaseSnapshot, done: frozenset[str]) -> str | None:
    """The next action to take on the case, always one of its ``allowed_actions``; None
    when there is nothing to do now (waiting for routing, or finished)."""
    return next((a for a in _wanted(script, snap, done) if a in snap.allowed), None)


def case_finished(script: CaseScript, snap: CaseSnapshot, done: frozenset[str]) -> bool:
    return snap.status in FINISHED_STATUSES and next_step(script, snap, done) is None


def actor_for(pack: PolicyPack, snap: CaseSnapshot) -> str:
    """Who acts: the assignee, else the case's owner, else the head of its department (or
    of the pack's triage department)."""
    for candidate in (snap.assignee, snap.owner):
        if candidate is not None and pack.has_member(candidate):
            return candidate
    department = snap.department
    if department is None or not pack.has_department(department):
        department = pack.triage_department
    return pack.department(department).head


def approver_for(pack: PolicyPack, department: str | None) -> str:
    """Someone who may approve a reassignment, from the case's department if possible."""
    approvers = [s for s in pack.staff if s.approves_reassignment]
    same = [s for s in approvers if s.department == department]
    return (same or approvers)[0].id


def escalation_target(pack: PolicyPack, snap: CaseSnapshot) -> str:
    """The first person on the pack's ladder (a department there means its head)."""
    if pack.escalation is not None:
        for target in pack.escalation.ladder[0].to:
            if pack.has_member(target):
                return target
            if pack.has_department(target):
                return pack.department(target).head
    return pack.department(pack.triage_department).head


@dataclass(frozen=True)
class CaseContext:
    pack: PolicyPack
    category: str
    language: str

    def say(self, texts: tuple[str, str]) -> str:
        return texts[1] if self.language == "en" else texts[0]


def _money(amount: float) -> str:
    return f"{amount:.2f}"


BodyBuilder = Callable[[CaseContext, CaseSnapshot, random.Random, datetime], dict[str, Any]]


def _compensation(
    ctx: CaseContext, snap: CaseSnapshot, rng: random.Random, _now: datetime
) -> dict[str, Any]:
    """Compensation and loss, charged to the department that handled the case."""
    low, high = profile_of(ctx.pack).compensation or (100, 1_000)
    amount = rng.randint(low, high)
    category = ctx.pack.category(ctx.category)
    department = snap.department or (category.department if category else None)
    return {
        "compensation_amount": _money(amount),
        "loss_amount": _money(amount * rng.uniform(1.0, 4.0)),
        "currency": "CNY",
        "responsible_department": department or ctx.pack.triage_department,
        "share": f"{rng.uniform(0.3, 1.0):.2f}",
        "note": "按责任比例计入部门考核",
    }


def _hold(
    ctx: CaseContext, snap: CaseSnapshot, rng: random.Random, _now: datetime
) -> dict[str, Any]:
    reason, note = rng.choice(
        (
            ("waiting_for_customer", "等待客户补充照片和购买凭证"),
            ("awaiting_parts", "等待配件到货"),
        )
    )
    return {"reason": reason, "note": note}


def _reassign(
    ctx: CaseContext, snap: CaseSnapshot, _rng: random.Random, _now: datetime
) -> dict[str, Any]:
    return {
        "approver": approver_for(ctx.pack, snap.department),
        "to_assignee": snap.reassign_to,
        "reason": "需要更熟悉此类问题的同事跟进",
    }


def _escalate(
    ctx: CaseContext, snap: CaseSnapshot, _rng: random.Random, _now: datetime
) -> dict[str, Any]:
    return {"reason": "客户要求升级处理", "escalated_to": escalation_target(ctx.pack, snap)}


def _delivery(
    _ctx: CaseContext, _snap: CaseSnapshot, rng: random.Random, now: datetime
) -> dict[str, Any]:
    return {
        "delivered_at": now.isoformat(timespec="seconds"),
        "delivery_note": f"送货单 D-{rng.randint(1000, 9999)}",
    }


def _return_visit(
    ctx: CaseContext, _snap: CaseSnapshot, rng: random.Random, _now: datetime
) -> dict[str, Any]:
    return {
        "method": rng.choice(("phone", "wechat", "on_site", "sms")),
        "outcome": ctx.say(("回访客户，表示满意。", "Follow-up call: the customer is happy.")),
        "satisfied": True,
    }


def _fixed(**fields: Any) -> BodyBuilder:
    return lambda _ctx, _snap, _rng, _now: dict(fields)


def _answer(name: str, pick: Callable[[Texts], tuple[str, str]]) -> BodyBuilder:
    """A field with the pack's text in the customer's language."""
    return lambda ctx, _snap, _rng, _now: {name: ctx.say(pick(profile_of(ctx.pack).texts))}


_BODIES: dict[str, BodyBuilder] = {
    "acknowledge": _fixed(note="已电话告知客户受理编号"),
    "add_note": _fixed(note="已联系客户，约定明天上午再次沟通处理进度。"),
    "hold": _hold,
    "reassign": _reassign,
    "escalate": _escalate,
    "record_compensation": _compensation,
    "communicate_decision": _answer("decision", lambda t: t.decision),
    "answer_on_spot": _answer("answer", lambda t: t.on_spot),
    "mark_not_upheld": _answer("reason", lambda t: t.not_upheld),
    "resolve": _answer("resolution", lambda t: t.resolution),
    "record_delivery": _delivery,
    "record_return_visit": _return_visit,
}


def action_body(
    action: str, ctx: CaseContext, snap: CaseSnapshot, rng: random.Random, now: datetime
) -> dict[str, Any]:
    """The request body of a staff action (feedback is the customer's: see feedback_scores);
    start_investigation, resume and close need only the actor."""
    build = _BODIES.get(action, _fixed())
    return {"actor": actor_for(ctx.pack, snap), **build(ctx, snap, rng, now)}


def feedback_scores(
    script: CaseScript, round_: int, language: str, rng: random.Random
) -> dict[str, Any]:
    """The customer's survey answer: unsatisfied (a score of 2 or less) only in the first
    round of a case scripted so; otherwise 4–5 with the odd 3."""
    if script.unsatisfied_first and round_ == 1:
        scores = [rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 3)]
        comment = ("问题没有真正解决。", "The problem is not really solved.")
    else:
        scores = [rng.choice((3, 4, 4, 5, 5, 5)) for _ in range(3)]
        comment = ("处理及时，谢谢。", "Quick and helpful, thank you.")
    return {
        "quality": scores[0],
        "attitude": scores[1],
        "speed": scores[2],
        "comment": comment[1] if language == "en" else comment[0],
    }


# ---------------------------------------------------------------------------------------
# The I/O: HTTP, Kafka, timing, printing
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    minutes: float
    rate: float
    seed: int
    intake: str
    reporting: str
    kafka: str
    namespace: str
    feedback_secret: str


@dataclass
class Case:
    no: str
    plan: PlannedSubmission
    ctx: CaseContext
    submitted: float
    done: set[str] = field(default_factory=set)
    token_asked: float | None = None


def _short(action: str) -> str:
    return ACTION_PATHS.get(action, action)


class Demo:
    def __init__(self, config: Config, registry: PackRegistry) -> None:
        self.config = config
        self.registry = registry
        self.topics = Topics.in_namespace(config.namespace)
        self.rng = random.Random(config.seed)
        self.run_id = datetime.now(UTC).strftime("%y%m%d%H%M%S")
        self.tally: Counter[str] = Counter()
        self.tokens: dict[str, str] = {}
        self.awaiting: dict[str, PlannedSubmission] = {}  # Kafka submission id → plan
        self.accepted: dict[str, str] = {}  # Kafka submission id → complaint number
        self.cases: dict[str, Case] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()
        self.started = time.monotonic()
        self.http: httpx.AsyncClient | None = None
        self.producer: Any = None
        self.consumer: Any = None

    # -- small helpers -------------------------------------------------------------------

    def line(self, kind: str, text: str) -> None:
        print(f"{time.monotonic() - self.started:6.1f}s  {kind:<9} {text}", flush=True)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def pack_of(self, plan: PlannedSubmission) -> PolicyPack:
        return self.registry.packs[plan.pack]

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the demo stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)

    async def request(
        self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response | None:
        assert self.http is not None
        try:
            return await self.http.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            self.tally["errors"] += 1
            self.line("error", f"{method} {url}: {exc!r}")
            return None

    # -- set-up --------------------------------------------------------------------------

    async def intake_answers(self) -> bool:
        branch = demo_branch(_sorted_packs(self.registry)[0])
        assert self.http is not None
        try:
            response = await self.http.get(f"{self.config.intake}/v1/branches/{branch}")
        except httpx.HTTPError as exc:
            print(f"intake does not answer at {self.config.intake} ({exc!r}).")
            print("Start the platform first: `make run` in another terminal.")
            return False
        if response.status_code != 200:
            print(f"intake at {self.config.intake} does not know {branch}: {response.text}")
            return False
        return True

    async def start_kafka(self) -> None:
        servers = self.config.kafka
        producer = AIOKafkaProducer(
            bootstrap_servers=servers, acks="all", request_timeout_ms=10_000
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=servers, group_id=None, enable_auto_commit=False
        )
        try:
            await asyncio.wait_for(producer.start(), 15)
            await asyncio.wait_for(consumer.start(), 15)
            names = (
                self.topics.intake.name,
                self.topics.submission_outcomes.name,
                self.topics.sla.name,
            )
            partitions = [
                TopicPartition(name, p)
                for name in names
                for p in sorted(await producer.partitions_for(name))
            ]
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for partition in partitions:  # resolve the end offsets now, before we submit
                await consumer.position(partition)
        except Exception as exc:  # any failure means: go on without Kafka
            self.line("kafka", f"not reachable at {servers} ({exc!r}): HTTP only")
            with contextlib.suppress(Exception):
                await producer.stop()
            with contextlib.suppress(Exception):
                await consumer.stop()
            return
        self.producer, self.consumer = producer, consumer
        self.line("kafka", f"connected to {servers}; reading {', '.join(names)}")

    async def stop_kafka(self) -> None:
        for client in (self.producer, self.consumer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    async def post_volumes(self) -> None:
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        plans = plan_volumes(self.registry, today, self.rng)
        responses = await asyncio.gather(
            *(
                self.request(
                    "PUT",
                    f"{self.config.intake}/v1/branches/{p.branch_id}/service-volumes/{p.day}",
                    {"services": p.services},
                )
                for p in plans
            )
        )
        by_branch: dict[str, list[VolumePlan]] = {}
        for plan, response in zip(plans, responses, strict=True):
            if response is not None and response.status_code == 200:
                by_branch.setdefault(plan.branch_id, []).append(plan)
                self.tally["volumes"] += 1
        for branch, days in by_branch.items():
            average = sum(d.services for d in days) // len(days)
            self.line(
                "volumes", f"{branch:<19} {len(days)} days, about {average} {days[0].unit}/day"
            )

    # -- submitting ----------------------------------------------------------------------

    def describe(self, plan: PlannedSubmission, no: str) -> str:
        text = f"{plan.via:<5} {plan.branch_id:<19} {no}  {plan.category} ({plan.severity})"
        if plan.taken_at is not None:
            age = (datetime.now(UTC) - plan.taken_at).total_seconds() / 86_400
            text += f"  LATE: taken {age:.1f} d ago, past {plan.late_clock}"
        return text

    def track(self, no: str, plan: PlannedSubmission) -> None:
        self.tally["submitted"] += 1
        self.tally[f"submitted:{plan.via}"] += 1
        if plan.late_clock:
            self.tally["late"] += 1
        self.line("submit", self.describe(plan, no))
        ctx = CaseContext(self.pack_of(plan), plan.category, plan.language)
        case = Case(no, plan, ctx, time.monotonic())
        self.cases[no] = case
        self.spawn(self.walk(case))

    async def submit(self, plan: PlannedSubmission) -> None:
        if plan.via == "kafka" and self.producer is not None:
            await self.submit_kafka(plan)
        else:
            await self.submit_http(replace(plan, via="http"))

    async def submit_http(self, plan: PlannedSubmission) -> None:
        response = await self.request(
            "POST",
            f"{self.config.intake}/v1/complaints",
            plan.body,
            headers={"Idempotency-Key": plan.key},
        )
        if response is None:
            return
        if response.status_code != 201:
            self.tally["refused submissions"] += 1
            self.line("refused", f"{plan.branch_id} {response.status_code} {response.text[:200]}")
            return
        no = response.json()["complaint_no"]
        self.track(no, plan)
        if plan.replay:
            self.spawn(self.replay_http(plan, no))

    async def replay_http(self, plan: PlannedSubmission, no: str) -> None:
        await self.pause(self.rng.uniform(1, 5))
        if self.stop.is_set():
            return
        response = await self.request(
            "POST",
            f"{self.config.intake}/v1/complaints",
            plan.body,
            headers={"Idempotency-Key": plan.key},
        )
        if response is None:
            return
        again = response.json().get("complaint_no") if response.status_code == 201 else None
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        verdict = "same number, Idempotent-Replayed" if again == no and replayed else "MISMATCH"
        self.tally["replays"] += 1
        self.line("replay", f"http  {plan.branch_id:<19} {no}  key {plan.key}: {verdict}")

    async def send_kafka(self, plan: PlannedSubmission) -> None:
        value = json.dumps(plan.kafka_message(), ensure_ascii=False).encode()
        await self.producer.send_and_wait(
            self.topics.submitted.name, value=value, key=plan.branch_id.encode()
        )

    async def submit_kafka(self, plan: PlannedSubmission) -> None:
        self.awaiting[plan.key] = plan
        try:
            await self.send_kafka(plan)
        except Exception as exc:  # a broker hiccup: say so and go on
            self.awaiting.pop(plan.key, None)
            self.tally["errors"] += 1
            self.line("error", f"kafka send {plan.key}: {exc!r}")
            return
        self.tally["kafka sent"] += 1
        if plan.replay:
            self.spawn(self.replay_kafka(plan))

    async def replay_kafka(self, plan: PlannedSubmission) -> None:
        await self.pause(self.rng.uniform(2, 6))
        if not self.stop.is_set():
            with contextlib.suppress(Exception):
                await self.send_kafka(plan)

    async def burst(self) -> None:
        now = datetime.now(UTC)
        for plan in plan_burst(self.registry, self.rng, now, run_id=self.run_id):
            if self.stop.is_set():
                return
            await self.submit(plan)

    async def stream(self) -> None:
        seq = BURST_SIZE
        while not self.stop.is_set():
            plan = plan_stream_item(
                self.registry, self.rng, datetime.now(UTC), run_id=self.run_id, seq=seq
            )
            seq += 1
            self.spawn(self.submit(plan))
            await self.pause(self.rng.expovariate(self.config.rate))

    # -- reading the topics --------------------------------------------------------------

    async def listen(self) -> None:
        while not self.stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self.on_record(record.topic, record.value)

    def on_record(self, topic: str, raw: bytes) -> None:
        try:
            document = json.loads(raw)
        except (TypeError, ValueError):
            return
        if not isinstance(document, dict):
            return
        if topic == self.topics.intake.name and "feedback_token" in document:
            self.tokens[document["complaint_no"]] = document["feedback_token"]
        elif topic == self.topics.submission_outcomes.name:
            self.on_outcome(document)
        elif topic == self.topics.sla.name:
            self.on_sla(document)

    def on_outcome(self, outcome: dict[str, Any]) -> None:
        submission_id = outcome.get("submission_id", "")
        if outcome.get("event_type") == "SubmissionRejected":
            if self.awaiting.pop(submission_id, None) is not None:
                self.tally["refused submissions"] += 1
                self.line("refused", f"kafka {submission_id}: {outcome.get('errors')}")
            return
        no = outcome.get("complaint_no", "")
        if submission_id in self.accepted:
            if outcome.get("duplicate"):
                self.tally["replays"] += 1
                same = "same number" if self.accepted[submission_id] == no else "MISMATCH"
                self.line(
                    "replay",
                    f"kafka {outcome.get('branch_id', ''):<19} {no}  "
                    f"submission {submission_id}: {same}, duplicate",
                )
            return
        plan = self.awaiting.pop(submission_id, None)
        if plan is not None:
            self.accepted[submission_id] = no
            self.track(no, plan)

    def on_sla(self, event: dict[str, Any]) -> None:
        no = event.get("complaint_no", "")
        if event.get("event_type") == "ClockBreached":
            self.tally["breaches seen"] += 1
            self.line("breach", f"{no}  clock {event.get('name')} is past due")
        elif event.get("event_type") == "EscalationRaised":
            self.tally["escalations seen"] += 1
            to = ", ".join(event.get("to", ()))
            self.line(
                "escalated", f"{no}  level {event.get('level')} → {to} ({event.get('reason')})"
            )

    # -- walking cases -------------------------------------------------------------------

    def first_delay(self, script: CaseScript) -> float:
        """Answers on the spot happen at once, before routing assigns the case."""
        return 0.0 if script.ending is Ending.ON_SPOT else self.rng.uniform(0.1, 1.0)

    async def walk(self, case: Case) -> None:
        await self.pause(self.first_delay(case.plan.script))
        idle = 0
        pack = case.ctx.pack
        while not self.stop.is_set() and idle < IDLE_LIMIT:
            response = await self.request("GET", f"{self.config.intake}/v1/complaints/{case.no}")
            if response is None or response.status_code != 200:
                idle += 1
                await self.pause(2.0)
                continue
            snap = snapshot(response.json(), pack, time.monotonic() - case.submitted)
            done = frozenset(case.done)
            action = next_step(case.plan.script, snap, done)
            if action is None:
                if case_finished(case.plan.script, snap, done):
                    self.tally["finished"] += 1
                    return
                idle += 1
                await self.pause(1.0)
                continue
            idle = 0
            acted = await self.act(case, action, snap)
            await self.pause(self.rng.uniform(*STEP_DELAY) if acted else 1.0)

    async def act(self, case: Case, action: str, snap: CaseSnapshot) -> bool:
        if action == "record_feedback":
            return await self.give_feedback(case, snap)
        body = action_body(action, case.ctx, snap, self.rng, datetime.now(UTC))
        url = f"{self.config.intake}/v1/complaints/{case.no}/{ACTION_PATHS[action]}"
        response = await self.request("POST", url, body)
        if response is None:
            return False
        if response.status_code == 200:
            case.done.add(done_marker(action, snap.round))
            self.tally[f"action:{_short(action)}"] += 1
            status = response.json()["status"]
            self.line("act", f"{case.no}  {_short(action):<15} by {body['actor']:<20} → {status}")
            return True
        return self.refused(case, action, snap, response)

    def refused(
        self, case: Case, action: str, snap: CaseSnapshot, response: httpx.Response
    ) -> bool:
        if response.status_code == 409:
            self.tally["not now (409)"] += 1
            status = response.json().get("status", "?")
            self.line("not now", f"{case.no}  {_short(action)}: the case is {status} by now")
            return False
        case.done.add(done_marker(action, snap.round))  # do not try it again
        self.tally["errors"] += 1
        self.line("error", f"{case.no}  {_short(action)}: {response.status_code} {response.text}")
        return False

    def token_for(self, case: Case) -> str | None:
        """The survey token from the topic; computed with the development secret when the
        topic cannot be read or does not bring it in time."""
        if case.no in self.tokens:
            return self.tokens[case.no]
        now = time.monotonic()
        case.token_asked = case.token_asked or now
        if self.consumer is not None and now - case.token_asked < TOKEN_PATIENCE:
            return None
        self.tally["tokens computed"] += 1
        return feedback_token(self.config.feedback_secret.encode(), case.no)

    async def give_feedback(self, case: Case, snap: CaseSnapshot) -> bool:
        token = self.token_for(case)
        if token is None:
            return False
        scores = feedback_scores(case.plan.script, snap.round, case.ctx.language, self.rng)
        url = f"{self.config.intake}/v1/complaints/{case.no}/feedback"
        response = await self.request("POST", url, {"token": token, **scores})
        if response is None:
            return False
        if response.status_code != 200:
            return self.refused(case, "record_feedback", snap, response)
        case.done.add(done_marker("record_feedback", snap.round))
        result = response.json()
        satisfied = min(scores["quality"], scores["attitude"], scores["speed"]) >= 3
        self.tally["feedback satisfied" if satisfied else "feedback unsatisfied"] += 1
        marks = f"{scores['quality']}/{scores['attitude']}/{scores['speed']}"
        verdict = "satisfied" if satisfied else f"not satisfied → round {result['round']}"
        self.line("feedback", f"{case.no}  {marks} {verdict} → {result['status']}")
        return True

    # -- the run -------------------------------------------------------------------------

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if not self.stop.is_set():
                self.line("stop", "stopping (Ctrl-C again to force)")
                self.stop.set()
                loop.remove_signal_handler(signal.SIGINT)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop)

    async def run(self) -> int:
        self.install_signals()
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        # An administrator's token: it may submit for every demo branch and enter each
        # staff member's actions on their behalf (the actor in the body is kept).
        headers = DevCredentials.from_environment().staff_headers("admin", reason="demo")
        async with httpx.AsyncClient(timeout=10, limits=limits, headers=headers) as http:
            self.http = http
            if not await self.intake_answers():
                return 1
            self.line("start", f"seed {self.config.seed}, run {self.run_id}")
            await self.start_kafka()
            try:
                await self.play()
            finally:
                self.stop.set()
                for task in list(self.tasks):
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
                await self.stop_kafka()
            await self.summary()
        # A script or a smoke test running the demo learns from the status that a call failed.
        return 1 if self.tally["errors"] else 0

    async def play(self) -> None:
        deadline = self.started + self.config.minutes * 60
        if self.consumer is not None:
            self.spawn(self.listen())
        await self.post_volumes()
        await self.burst()
        self.spawn(self.stream())
        await self.pause(max(0.0, deadline - time.monotonic()))

    async def summary(self) -> None:
        t = self.tally
        actions = {k.split(":", 1)[1]: v for k, v in t.items() if k.startswith("action:")}
        print(f"\n── summary after {time.monotonic() - self.started:.0f} s ──")
        print(
            f"complaints  {t['submitted']} submitted ({t['submitted:http']} http, "
            f"{t['submitted:kafka']} kafka of {t['kafka sent']} sent), {t['late']} late, "
            f"{t['replays']} retries answered, {t['refused submissions']} refused"
        )
        print(f"volumes     {t['volumes']} branch-days posted")
        listing = ", ".join(f"{k} {v}" for k, v in sorted(actions.items(), key=lambda i: -i[1]))
        print(f"actions     {sum(actions.values())}: {listing}")
        print(
            f"feedback    {t['feedback satisfied']} satisfied, "
            f"{t['feedback unsatisfied']} not satisfied (reopened)"
            + (f"; {t['tokens computed']} tokens computed" if t["tokens computed"] else "")
        )
        print(f"finished    {t['finished']} cases walked to the end")
        print(f"seen        {t['breaches seen']} breaches, {t['escalations seen']} escalations")
        print(f"refused     {t['not now (409)']} actions out of turn (409), {t['errors']} errors")
        await self.print_reporting()

    async def print_reporting(self) -> None:
        response = await self.request("GET", f"{self.config.reporting}/v1/reports/summary")
        if response is not None and response.status_code == 200:
            summary = response.json()
            statuses = ", ".join(f"{k} {v}" for k, v in sorted(summary["by_status"].items()))
            print(f"reporting   {summary['total']} cases: {statuses}")
        print(f"dashboard   {self.config.reporting}/")
        print(f"case files  {self.config.reporting}/v1/cases/<number>; e-mails in .local/mail/")


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def _default_secret() -> str:
    default = IntakeSettings.model_fields["feedback_secret"].default
    return os.environ.get("FEEDBACK_SECRET") or default.get_secret_value()


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description="Feed the running platform (make run) with a realistic stream of "
        "complaints, staff actions and feedback for every pack's demo branch."
    )
    parser.add_argument("--minutes", type=float, default=2.0, help="how long to run (2)")
    parser.add_argument("--rate", type=float, default=3.0, help="complaints per second (3)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random choices")
    parser.add_argument(
        "--intake",
        default=os.environ.get("INTAKE_URL", "http://127.0.0.1:8001"),
        help="intake's URL (INTAKE_URL)",
    )
    parser.add_argument(
        "--reporting",
        default=os.environ.get("REPORTING_URL", "http://127.0.0.1:8005"),
        help="reporting's URL (REPORTING_URL)",
    )
    parser.add_argument(
        "--kafka",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (KAFKA_BOOTSTRAP_SERVERS)",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0:
        parser.error("--rate and --minutes must be positive")
    return Config(
        minutes=args.minutes,
        rate=args.rate,
        seed=args.seed if args.seed is not None else random.SystemRandom().randrange(10**6),
        intake=args.intake.rstrip("/"),
        reporting=args.reporting.rstrip("/"),
        kafka=args.kafka,
        namespace=os.environ.get("COMPLAINTS_TOPIC_NAMESPACE", DEFAULT_NAMESPACE),
        feedback_secret=_default_secret(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    packs_dir = Path(os.environ.get("POLICY_PACKS_DIR", REPO / "policy-packs"))
    registry = load_packs(packs_dir)
    return asyncio.run(Demo(config, registry).run())


if __name__ == "__main__":
    sys.exit(main())
