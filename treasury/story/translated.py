"""The story's data in Kyrgyz and Russian, entered as officers would enter it.

The site and the console translate their own words through message catalogues, but the data the
officers type (institution names, the decree's title, fund and account names, spend purposes,
payee labels) is entered in one language; its translations are entered with it, through the
audited translation store (``treasury.translations``). This is the story's share of that work, so
the Kyrgyz and Russian pages of the demo's site read in their own language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from treasury.ledger.models import Account, Asset
from treasury.officers import InstitutionRow, Officer
from treasury.policy.tables import AllowlistEntryRow
from treasury.proposals import SpendProposalRow
from treasury.story.clock import StoryClock
from treasury.translations import TranslationKind, TranslationRow, set_translations

Texts = Mapping[str, str]
"""language code -> text, for ``ky`` and ``ru``"""

INSTITUTIONS: dict[str, Texts] = {
    "MOF": {"ky": "Каржы министрлиги", "ru": "Министерство финансов"},
    "NBKR": {"ky": "Улуттук банк", "ru": "Национальный банк"},
    "ACH": {"ky": "Эсептөө палатасы", "ru": "Счётная палата"},
}
DECREE_TITLE: Texts = {
    "ky": "Улуттук резервди кайра теңдештирүү",
    "ru": "Перебалансировка национального резерва",
}
PURPOSES: dict[str, Texts] = {
    "Reserve rebalancing": {"ky": "Резервди кайра теңдештирүү", "ru": "Перебалансировка резерва"},
    "Medical equipment for the Osh regional hospital": {
        "ky": "Ош облустук ооруканасы үчүн медициналык жабдуулар",
        "ru": "Медицинское оборудование для Ошской областной больницы",
    },
    "Settlement of the services chain's operating costs": {
        "ky": "Мамлекеттик кызматтар блокчейнинин иштөө чыгымдарын төлөө",
        "ru": "Оплата операционных расходов блокчейна государственных услуг",
    },
}
ACCOUNT_PREFIXES: tuple[tuple[str, Texts], ...] = (
    ("vault:", {"ky": "Сактагычтагы каражат ({asset})", "ru": "Средства в хранилище ({asset})"}),
    (
        "reserve:unallocated-inflows:",
        {
            "ky": "Бөлүштүрүлө элек резерв түшүүлөрү ({asset})",
            "ru": "Нераспределённые поступления резерва ({asset})",
        },
    ),
    (
        "reserve:approved-outflows:",
        {"ky": "Бекитилген чыгымдар ({asset})", "ru": "Утверждённые расходы ({asset})"},
    ),
    (
        "reserve:suspense-outflows:",
        {
            "ky": "Түшүндүрүлбөгөн чыгымдар, текшерүүдө ({asset})",
            "ru": "Необъяснённые расходы, на проверке ({asset})",
        },
    ),
    ("fees:", {"ky": "Тармак комиссиялары ({asset})", "ru": "Сетевые комиссии ({asset})"}),
    (
        "fund:national-reserve:",
        {"ky": "Улуттук резерв фонду ({asset})", "ru": "Фонд национального резерва ({asset})"},
    ),
)
PAYEE: Texts = {"ky": "{asset} алуучусу", "ru": "Получатель {asset}"}


def _filled(texts: Texts, asset: str) -> dict[str, str]:
    return {language: text.format(asset=asset) for language, text in texts.items()}


def translate_records(
    session: Session,
    admin: Officer,
    clock: StoryClock,
    *,
    decree: str,
    symbols: Mapping[str, str],
) -> int:
    """Enter the Kyrgyz and Russian names of the story's institutions, decree, ledger accounts
    and payees as they stand now; returns how many records were translated. ``symbols`` names
    an asset code for people (``ERC20:0x…`` -> ``KGST``)."""
    now = clock()
    count = 0
    for code, texts in INSTITUTIONS.items():
        set_translations(session, admin, TranslationKind.INSTITUTION, code, texts, now=now)
        count += 1
    set_translations(session, admin, TranslationKind.LEGAL_BASIS, decree, DECREE_TITLE, now=now)
    count += 1
    accounts = session.execute(
        select(Account.code, Asset.code)
        .join(Asset, Asset.id == Account.asset_id)
        .order_by(Account.code)
    )
    for account, asset_code in accounts:
        asset = symbols.get(asset_code, asset_code)
        for prefix, texts in ACCOUNT_PREFIXES:
            if account.startswith(prefix):
                names = _filled(texts, asset)
                set_translations(session, admin, TranslationKind.ACCOUNT, account, names, now=now)
                count += 1
                break
    for entry in session.scalars(select(AllowlistEntryRow).order_by(AllowlistEntryRow.id)):
        asset = symbols.get(entry.asset, entry.asset)
        set_translations(
            session, admin, TranslationKind.PAYEE, entry.address, _filled(PAYEE, asset), now=now
        )
        count += 1
    return count


PURPOSE_PATTERNS: tuple[tuple[re.Pattern[str], Texts], ...] = (
    (
        re.compile(r"^Fee bump of proposal (?P<proposal>\d+): replaces transaction (?P<txid>\w+)$"),
        {
            "ky": "№ {proposal} сунуштун комиссиясын жогорулатуу: {txid} транзакциясын алмаштырат",
            "ru": "Повышение комиссии предложения № {proposal}: заменяет транзакцию {txid}",
        },
    ),
    (
        re.compile(
            r"^Sweep of vault (?P<old>\S+) to vault (?P<new>\S+) \(rotation (?P<rotation>\d+): "
            r"the (?P<institution>.+) cosigner key is presumed compromised\)$"
        ),
        {
            "ky": "{old} сактагычын {new} сактагычына толук которуу (алмаштыруу № {rotation}: "
            "{institution} ачкычы бузулган деп эсептелет)",
            "ru": "Перевод всех средств хранилища {old} в хранилище {new} (замена № {rotation}: "
            "ключ {institution} считается скомпрометированным)",
        },
    ),
    (
        re.compile(r"^Refresh of recovery vault (?P<vault>\S+) before its recovery path opens$"),
        {
            "ky": "{vault} калыбына келтирүү сактагычын жаңылоо, калыбына келтирүү жолу ачыла электе",
            "ru": "Обновление хранилища {vault} до открытия пути восстановления",
        },
    ),
)
"""The story's generated purposes (a fee bump's, a sweep's, a refresh's) and their wording;
an institution named inside takes its own translated name."""


def translate_generated_purposes(session: Session, proposer: Officer, clock: StoryClock) -> int:
    """Enter the Kyrgyz and Russian purposes of the proposals the story's steps generated
    (``PURPOSE_PATTERNS``), where no translation is entered yet; returns how many."""
    entered = set(
        session.scalars(
            select(TranslationRow.key).where(TranslationRow.kind == TranslationKind.PURPOSE)
        )
    )
    names = {
        name: INSTITUTIONS[code]
        for code, name in session.execute(select(InstitutionRow.code, InstitutionRow.name))
        if code in INSTITUTIONS
    }
    count = 0
    for proposal_id, purpose in session.execute(
        select(SpendProposalRow.id, SpendProposalRow.purpose).order_by(SpendProposalRow.id)
    ):
        if str(proposal_id) in entered:
            continue
        for pattern, texts in PURPOSE_PATTERNS:
            found = pattern.fullmatch(purpose)
            if found is None:
                continue
            fields = found.groupdict()
            translated = {}
            for language, text in texts.items():
                local = dict(fields)
                if "institution" in local and local["institution"] in names:
                    local["institution"] = names[local["institution"]][language]
                translated[language] = text.format(**local)
            set_translations(
                session,
                proposer,
                TranslationKind.PURPOSE,
                str(proposal_id),
                translated,
                now=clock(),
            )
            count += 1
            break
    return count


def translate_purpose(
    session: Session, proposer: Officer, clock: StoryClock, proposal_id: int, purpose: str
) -> None:
    """Enter a proposal's purpose in Kyrgyz and Russian, as the proposer does after proposing."""
    texts = PURPOSES.get(purpose)
    if texts is None:
        raise KeyError(f"The story has no translation of the purpose {purpose!r}.")
    set_translations(
        session, proposer, TranslationKind.PURPOSE, str(proposal_id), texts, now=clock()
    )
