"""``orderly seed-demo``: a realistic history of finished orders written straight into the read
model (:mod:`services.demo_seed`), so a new installation has reports and forecasts to show.

Exit codes: 0 seeded; 1 seeded data is there already (without ``--replace``), the database
cannot be written (e.g. not migrated) or the approval policy cannot be read; 2 bad usage.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from config import PolicyFileError, Settings, get_settings, load_policy
from db.session import make_engine, make_sessionmaker
from services.demo_seed import (
    MAX_MONTHS,
    MAX_ORDERS,
    SeededDataExists,
    SeedError,
    SeedOptions,
    SeedResult,
    seed_demo,
)
from workflows.client import order_policy


def _fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


async def _seed(settings: Settings, options: SeedOptions, progress: Progress) -> SeedResult:
    policy = order_policy(settings, load_policy(settings.approval_policy_file))
    tasks: list[TaskID] = []

    def show(done: int, total: int) -> None:
        if not tasks:  # the bar appears once writing starts (not before a refusal)
            tasks.append(progress.add_task("writing orders", total=total))
        progress.update(tasks[0], completed=done, total=total)

    engine = make_engine(settings.database_url)
    try:
        return await seed_demo(make_sessionmaker(engine), options, policy, on_progress=show)
    finally:
        await engine.dispose()


def _summary(console: Console, result: SeedResult) -> None:
    replaced = f", replacing {result.replaced}" if result.replaced else ""
    console.print(
        f"Seeded [bold]{result.orders}[/bold] orders ({result.lines} lines, {result.events} "
        f"events) of {result.customers} customers and {result.products} products, created "
        f"{result.start} to {result.end} (exclusive){replaced}, in {result.seconds:.1f} s.",
        highlight=False,
    )
    table = Table(box=box.SIMPLE_HEAD, title="Statuses", title_justify="left")
    table.add_column("status")
    table.add_column("orders", justify="right")
    for status, count in result.statuses.items():
        table.add_row(status, str(count))
        for reason, n in result.close_reasons.get(status, {}).items():
            table.add_row(f"  {reason}", str(n), style="dim")
    console.print(table)


def seed_demo_command(
    orders: Annotated[
        int, typer.Option(min=1, max=MAX_ORDERS, help="How many finished orders to write.")
    ] = 50_000,
    months: Annotated[
        int,
        typer.Option(min=1, max=MAX_MONTHS, help="Months of history, up to the end of yesterday."),
    ] = 18,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Delete the orders seeded before (only those) and seed again."
        ),
    ] = False,
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed: the same seed gives the same history.")
    ] = 1,
) -> None:
    """Write a demo history of finished orders (with lines, events and the report rollups)."""
    settings = get_settings()
    options = SeedOptions(orders=orders, months=months, seed=seed, replace=replace)
    console = Console()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    try:
        with progress:
            result = asyncio.run(_seed(settings, options, progress))
    except SeededDataExists as exc:
        raise _fail(str(exc)) from exc
    except SeedError as exc:
        raise _fail(str(exc), 2) from exc
    except PolicyFileError as exc:
        raise _fail(str(exc)) from exc
    except SQLAlchemyError as exc:
        raise _fail(
            f"cannot write the database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            " (is it migrated? alembic -c db/alembic.ini upgrade head)"
        ) from exc
    _summary(console, result)


def register(app: typer.Typer) -> None:
    """Add ``seed-demo`` to the ``orderly`` app."""
    app.command("seed-demo")(seed_demo_command)
