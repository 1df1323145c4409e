"""The Orderly worker: registers the order workflow and its activities on the task queue.

Run ``python worker.py [--queues orders|intake|orders,intake]``; any number of these can run
against the same Temporal cluster. ``make run`` starts one of each: imports get their own
process, so a big import's starts neither wait behind the orders it creates nor slow them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.credit import CreditActivities
from activities.customers import CustomerActivities
from activities.imports import ImportActivities
from activities.inventory import InventoryActivities
from activities.mail import MailActivities
from activities.notify import NotifyActivities
from activities.payment import PaymentActivities
from activities.projection import ProjectionActivities
from activities.reports import ReportActivities
from activities.shipping import ShippingActivities
from activities.webhooks import WebhookActivities
from config import Settings, get_settings, load_keyring, load_policy
from db import cursors
from db.session import SessionFactory, make_engine, make_sessionmaker
from db.vault import Vault
from integrations.carrier import SimulatedCarrier
from integrations.credit import SimulatedBureau
from integrations.inventory import SimulatedInventory
from integrations.mail import FileTransport, NoTransport, SmtpTransport, Transport
from integrations.payment import SimulatedGateway
from security.keyring import KeyConfigError
from services.context import Services
from services.tracking import TrackingLinks
from services.webhooks import ensure_delivery_workflows
from workflows.classify import ClassifyCustomersWorkflow, ensure_schedule
from workflows.client import connect
from workflows.imports import ImportWorkflow
from workflows.mail import MailDispatchWorkflow, start_mail_dispatch
from workflows.order import OrderWorkflow
from workflows.reports import AnalyticsWorkflow, ReportExportWorkflow, ensure_analytics_schedule
from workflows.webhooks import WebhookDeliveryWorkflow

log = logging.getLogger("orderly.worker")


def build_activities(settings: Settings, sessions: SessionFactory) -> list[Callable[..., Any]]:
    """The orders' activities wired to the simulators; swap a simulator here for a real
    provider."""
    keyring = load_keyring(settings)
    vault = Vault(keyring)
    credit = CreditActivities(
        SimulatedBureau(
            sessions,
            default_score=settings.credit_default_score,
            default_limit=settings.credit_default_limit,
        ),
        sessions,
    )
    inventory = InventoryActivities(SimulatedInventory(sessions))
    payment = PaymentActivities(
        SimulatedGateway(
            sessions,
            delay=settings.sim_payment_delay,
            transient_failures=settings.sim_payment_transient_failures,
        )
    )
    shipping = ShippingActivities(SimulatedCarrier(sessions, delay=settings.sim_carrier_delay))
    # Customer emails carry a link to the order's public tracking page (added at send time).
    links = TrackingLinks(keyring, settings.public_base_url, settings.tracking_link_ttl)
    notify = NotifyActivities()
    mail = MailActivities(sessions, vault, settings, mail_transport(settings), links.url)
    projection = ProjectionActivities(sessions, vault)
    customers = CustomerActivities.from_settings(settings, sessions)
    reports = ReportActivities(sessions, settings, vault)
    webhooks = WebhookActivities(sessions, settings, keyring)
    return [
        credit.check_credit,
        inventory.reserve_stock,
        inventory.release_stock,
        inventory.ship_stock,
        payment.capture_payment,
        payment.refund_payment,
        shipping.book_shipment,
        shipping.cancel_shipment,
        notify.send_notification,
        mail.dispatch_mail,
        projection.project_order,
        customers.count_customers,
        customers.classify_customers,
        reports.open_week_export,
        reports.run_export,
        reports.compute_rules,
        reports.compute_forecasts,
        webhooks.deliver_webhooks,
    ]


def mail_transport(settings: Settings) -> Transport:
    if settings.mail_transport == "smtp":
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_tls,
            settings.smtp_username,
            password,
            settings.smtp_timeout.total_seconds(),
            settings.smtp_ca_file,
        )
    if settings.mail_transport == "file":
        return FileTransport(settings.mail_dir)
    return NoTransport()


def mail_banner(settings: Settings) -> str:
    """Where email goes, in words (the worker's log and make run's banner)."""
    if settings.mail_transport == "smtp":
        return f"SMTP {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_tls})"
    if settings.mail_transport == "file":
        return f".eml files in {settings.mail_dir.resolve()}"
    return "recorded in the outbox only (not sent)"


def build_intake_activities(
    settings: Settings, sessions: SessionFactory, client: Client
) -> list[Callable[..., Any]]:
    """Imports: they start orders through the same use cases as the API (services/)."""
    imports = ImportActivities(
        Services(
            settings=settings,
            client=client,
            sessions=sessions,
            approval_policy=load_policy(settings.approval_policy_file),
            keyring=load_keyring(settings),
        )
    )
    return [imports.validate_import, imports.start_import_batch, imports.finish_import]


ORDER_WORKFLOWS = [
    OrderWorkflow,
    ClassifyCustomersWorkflow,
    ReportExportWorkflow,
    AnalyticsWorkflow,
    WebhookDeliveryWorkflow,
    MailDispatchWorkflow,
]
INTAKE_WORKFLOWS = [ImportWorkflow]
WORKFLOWS = ORDER_WORKFLOWS + INTAKE_WORKFLOWS  # every workflow type (the replay test)


LAZY_IMPORTS = ("email_validator", "idna", "dns")  # what pydantic's e-mail validation imports
# Our own packages, imported once instead of once per order (that was ~20 % of the worker's CPU
# and most of each cached order's memory). The sandbox then no longer sees calls they make
# (e.g. datetime.now()): the test suite and the replay test run strict to catch those.
OWN_CODE = ("domain", "workflows")


def workflow_runner(*, strict: bool = False) -> SandboxedWorkflowRunner:
    """The sandbox; ``strict`` re-imports our workflow code per order so every call is checked."""
    passthrough = LAZY_IMPORTS if strict else LAZY_IMPORTS + OWN_CODE
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*passthrough)
    )


class WorkerGroup:
    """The Temporal workers of one process (one per task queue it serves), run together."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> WorkerGroup:
        for worker in self.workers:
            await self._stack.enter_async_context(worker)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


def build_worker(client: Client, settings: Settings, sessions: SessionFactory) -> WorkerGroup:
    """The workers of ``settings.worker_queues``: orders (and the classification schedule's
    workflow) on ``task_queue``, imports on ``intake_queue``."""
    runner = workflow_runner(strict=settings.strict_sandbox)
    workers = []
    if "orders" in settings.worker_queues:
        workers.append(
            Worker(
                client,
                task_queue=settings.task_queue,
                workflows=ORDER_WORKFLOWS,
                activities=build_activities(settings, sessions),
                max_cached_workflows=settings.max_cached_workflows,
                workflow_runner=runner,
                # A dead worker's sticky queue hands its orders back after this (default 10 s).
                sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
            )
        )
    if "intake" in settings.worker_queues:
        workers.append(
            Worker(
                client,
                task_queue=settings.intake_queue,
                workflows=INTAKE_WORKFLOWS,
                activities=build_intake_activities(settings, sessions, client),
                workflow_runner=runner,
                sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
            )
        )
    if not workers:
        raise ValueError("ORDERLY_WORKER_QUEUES names no queue (orders, intake)")
    return WorkerGroup(workers)


async def run_worker(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        client = await connect(settings)
        sessions = make_sessionmaker(engine)
        worker = build_worker(client, settings, sessions)
        if "orders" in settings.worker_queues:
            schedule = await ensure_schedule(
                client, task_queue=settings.task_queue, cron=settings.classification_schedule
            )
            log.info("customer classification schedule: %s", schedule)
            schedule = await ensure_analytics_schedule(
                client, task_queue=settings.task_queue, cron=settings.analytics_schedule
            )
            log.info("analytics schedule: %s", schedule)
            async with sessions.begin() as session:
                await cursors.start_at_end(session, cursors.MAIL)
            await start_mail_dispatch(client, settings)
            log.info("mail: %s", mail_banner(settings))
            started = await ensure_delivery_workflows(client, sessions, settings)
            log.info("webhook delivery workflows: %d enabled endpoints", started)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            queues = [w.task_queue for w in worker.workers]
            log.info("worker polling %s on %s", ", ".join(queues), settings.temporal_target)
            await stop.wait()
            log.info("worker shutting down")
    finally:  # also when cancelled (a test stopping it): no pooled connections left behind
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="An Orderly worker process.")
    parser.add_argument(
        "--queues",
        help="what this process serves: orders, intake or orders,intake "
        "(default: ORDERLY_WORKER_QUEUES, i.e. both)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    if args.queues:
        queues = [q.strip() for q in args.queues.split(",") if q.strip()]
        try:
            settings = settings.model_copy(
                update={
                    "worker_queues": Settings.model_validate(
                        {"worker_queues": queues}
                    ).worker_queues
                }
            )
        except ValueError:
            parser.error(f"--queues: {args.queues!r}: each one of orders, intake")
    try:
        load_keyring(settings)  # no keys in production: refuse to start, saying what to set
    except KeyConfigError as exc:
        raise SystemExit(f"worker: {exc}") from None
    asyncio.run(run_worker(settings))
    # Avoid the SDK's interpreter-exit crash in standalone processes (sdk-python #300).
    os._exit(0)


if __name__ == "__main__":
    main()
