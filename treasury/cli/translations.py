"""``treasury translations``: the Kyrgyz and Russian wording of the text officers enter.

The parliament site is read in Kyrgyz, Russian and English; its own words come from message
catalogues, but institution names, decree titles, fund names, spend purposes and payee labels are
data, entered in English. These commands enter their translations with the data
(``treasury.translations``), and ``treasury publish`` puts them in the export the site reads.
"""

from __future__ import annotations

from typing import Annotated

import typer

from custody.clock import utc_now
from treasury import officers
from treasury.cli.context import committed_session
from treasury.cli.officers import TokenOption, read_token
from treasury.translations import (
    LANGUAGES,
    ORIGINAL_LANGUAGE,
    TEXT_MAX_CHARS,
    TranslationKind,
    current_translations,
    set_translation,
)

_KINDS_HELP = (
    "Kinds, and the KEY that names the record:\n\n"
    "institution: an institution's name; KEY is its code (CB).\n\n"
    "legal_basis: a decree's title; KEY is its reference (DECREE-2026-17).\n\n"
    "legal_basis_url: the https address of the decree's official text in LANG; KEY is its "
    "reference.\n\n"
    "account: a fund's (ledger account's) name; KEY is the account code.\n\n"
    "purpose: a spend's purpose; KEY is the proposal id (7).\n\n"
    "payee: an allowlisted destination's label; KEY is the address as allowlisted."
)

app = typer.Typer(
    help=(
        "Translate the text officers enter (institution names, decree titles, fund names, spend "
        f"purposes, payee labels) into {' and '.join(LANGUAGES)}, for the parliament site. The "
        f"entered text itself is the original ({ORIGINAL_LANGUAGE}).\n\n" + _KINDS_HELP
    ),
    no_args_is_help=True,
)


@app.command("set")
def set_(
    kind: Annotated[str, typer.Argument(help="What is translated: " + ", ".join(TranslationKind))],
    key: Annotated[
        str, typer.Argument(help="The record: a code, reference, proposal id or address.")
    ],
    language: Annotated[str, typer.Argument(metavar="LANG", help=" or ".join(LANGUAGES))],
    text: Annotated[
        str,
        typer.Argument(help=f"The translated text, one line, at most {TEXT_MAX_CHARS} characters."),
    ],
    token_file: str | None = TokenOption,
) -> None:
    """Enter (or change) the LANG wording of a record's text (admin or proposer); audited.

    Entering the same text again changes nothing; a different text becomes the one in force, and the earlier one stays on record. The record must exist first: a proposer (or a clerk with the proposer role) adds a purpose's translations right after `treasury spend propose`, with the proposal id it printed.

    Examples:

    treasury translations set institution CB ky "Борбордук банк"

    treasury translations set legal_basis DECREE-2026-17 ru "Указ по ребалансировке резерва"

    treasury translations set legal_basis_url DECREE-2026-17 ru https://cbd.minjust.gov.kg/...

    treasury translations set purpose 7 ky "Ош облусундагы ооруканалар үчүн жабдуулар"
    """
    token = read_token(token_file)
    now = utc_now()
    with committed_session() as session:
        actor = officers.authenticate(session, token, now=now)
        outcome = set_translation(session, actor, kind, key, language, text, now=now)
    typer.echo(f"{kind} {key} [{language}]: {outcome.value}")


@app.command("list")
def list_(
    kind: Annotated[
        str | None,
        typer.Option(help="Only this kind: " + ", ".join(TranslationKind)),
    ] = None,
) -> None:
    """List the translations in force, one per line: kind, key, language, text (public; no token).

    They are published in the export as they are listed here.
    """
    wanted = None
    if kind is not None:
        if kind not in {k.value for k in TranslationKind}:
            raise typer.BadParameter(
                f"{kind!r} is not a kind; use one of: {', '.join(TranslationKind)}.",
                param_hint="--kind",
            )
        wanted = TranslationKind(kind)
    with committed_session() as session:
        found = current_translations(session, wanted)
    if not found:
        typer.echo("no translations entered" + ("" if kind is None else f" of kind {kind}"))
        return
    for translation in found:
        typer.echo(
            f"{translation.kind.value}\t{translation.key}\t{translation.language}\t{translation.text}"
        )
