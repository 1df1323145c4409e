"""Schema fuzzing: schemathesis generates requests for every operation of the app's OpenAPI
document; no answer may be a 5xx or differ from what the document promises.

The app is served by uvicorn on the test's event loop (it shares the stack's Temporal client and
database engine, which are bound to that loop); hypothesis draws each round of cases, and a
worker thread sends them over HTTP with schemathesis. Failures are collected rather than raised,
so one run reports every distinct problem (with a curl line and the app's traceback) instead of
the first one, shrunk.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from domain.money import CURRENCY_EXPONENTS
from domain.status import OrderStatus
from tests.api.conftest import Api, services_for
from tests.api.flows import create, wait_status
from tests.factories import big_order, order_payload

S = OrderStatus
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Generated examples per operation and mode; an operation whose inputs are exhausted sooner
# (GET /healthz has none) stops early, hence the count is asserted, not assumed.
FULL = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 35}
SHORT = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 10}  # CI's run (-m "not long")
# Commands that close an order run last, so the others still meet the seeded orders alive.
LAST = ("POST /orders/{order_id}/reject", "POST /orders/{order_id}/cancel")

# The fuzz needs one backend only: the hostile-input tests cover both.
pytestmark = pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free local port, on the running loop."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped the server
                pytest.fail("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class ServerErrors(logging.Handler):
    """Collects the tracebacks the app and uvicorn log, to attach them to failures."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append(text)


@dataclass
class Campaign:
    """Sends cases, counts requests and keeps the first examples of each distinct failure."""

    base_url: str
    headers: dict[str, str]
    server_errors: ServerErrors
    sent: int = 0
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    def send_all(self, cases: list[schemathesis.Case], times: int) -> None:
        """Send each case (``times`` over, to replay it) and check every answer; blocking."""
        for case in cases:
            for _ in range(times):
                self._send(case)

    def _send(self, case: schemathesis.Case) -> None:
        label = case.operation.label
        logged = len(self.server_errors.records)
        self.sent += 1
        try:
            response = case.call(
                base_url=self.base_url, headers=self.headers, session=self.session, timeout=60
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            curl = case.as_curl_command(base_url=self.base_url)
            self._fail(label, f"transport: {type(exc).__name__}", f"{exc}\n{curl}", logged)
            return
        by_status = self.statuses.setdefault(label, {})
        by_status[response.status_code] = by_status.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=self.headers)
        except schemathesis.errors.FailureGroup as group:
            kinds = ", ".join(sorted({type(f).__name__ for f in group.exceptions}))
            self._fail(label, f"{response.status_code}: {kinds}", str(group), logged)

    def _fail(self, label: str, kind: str, detail: str, logged: int) -> None:
        tracebacks = "\n".join(self.server_errors.records[logged:])
        examples = self.failures.setdefault((label, kind), [])
        if len(examples) < 2:
            examples.append(detail + (f"\n-- app log:\n{tracebacks}" if tracebacks else ""))

    def report(self) -> str:
        parts = [f"{len(self.failures)} distinct failures in {self.sent} requests:"]
        for (label, kind), examples in sorted(self.failures.items()):
            parts.append(f"\n===== {label} -> {kind}\n" + "\n-----\n".join(examples))
        return "\n".join(parts)


@dataclass
class Round:
    """``examples`` cases drawn from ``strategy``; each sent ``times`` over."""

    strategy: st.SearchStrategy[schemathesis.Case]
    examples: int
    times: int = 1

    def draw(self) -> list[schemathesis.Case]:
        """The cases, drawn up front on the loop's thread.

        Drawing parses source with ``ast`` (hypothesis reads constants and lambdas), and so
        does formatting a traceback on Python 3.11; that parser is not thread-safe there
        ("AST constructor recursion depth mismatch"), and the loop's thread formats tracebacks
        whenever an activity fails. So cases are never drawn while the loop runs.
        """
        cases: list[schemathesis.Case] = []

        @settings(
            max_examples=self.examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # failures are collected, never raised: nothing to shrink
            suppress_health_check=list(HealthCheck),
        )
        @given(case=self.strategy)
        def collect(case: schemathesis.Case) -> None:
            cases.append(case)

        collect()
        return cases


def has_inputs(operation: schemathesis.APIOperation) -> bool:
    parameters = (operation.path_parameters, operation.query, operation.headers, operation.cookies)
    return any(len(p) for p in parameters) or bool(len(operation.body))


def generated(
    operation: schemathesis.APIOperation, mode: GenerationMode, real_ids: list[str]
) -> st.SearchStrategy[schemathesis.Case]:
    """Cases from the schema alone; a third of them on real orders when the path names one."""
    anywhere = operation.as_strategy(generation_mode=mode)
    if "{order_id}" not in operation.path:
        return anywhere

    def on(order_id: str) -> st.SearchStrategy[schemathesis.Case]:
        return operation.as_strategy(generation_mode=mode, path_parameters={"order_id": order_id})

    return st.one_of(anywhere, anywhere, st.sampled_from(real_ids).flatmap(on))


# Text a person may type: any letter, mark, digit, symbol, space (no control/format characters).
_TEXT = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), min_size=1, max_size=40
).filter(str.strip)
_KEY = st.uuids().map(lambda u: f"fuzz-{u}")


@st.composite
def valid_orders(draw: st.DrawFn) -> dict[str, Any]:
    """Bodies the app must accept. The schema cannot say which currencies exist or which amounts
    fit them, so generation from the schema alone almost never creates an order."""
    currency = draw(st.sampled_from(sorted(CURRENCY_EXPONENTS)))
    exponent = CURRENCY_EXPONENTS[currency]
    price = st.integers(0, 10**7).map(lambda minor: str(Decimal(minor).scaleb(-exponent)))
    line = st.fixed_dictionaries(
        {
            "sku": st.sampled_from(["WIDGET-1", "GADGET-2", "RARE-9", "NOPE-404"]),
            "quantity": st.integers(1, 500),
            "unit_price": price,
        }
    )
    body = order_payload(
        lines=draw(st.lists(line, min_size=1, max_size=5)),
        currency=currency,
        payment=draw(
            st.sampled_from([{"type": "card", "token": "tok_visa"}, {"type": "bank_transfer"}])
        ),
        external_reference=draw(st.none() | _TEXT),
        sales_rep=draw(st.none() | _TEXT),
    )
    body["customer"] = {
        "id": draw(_TEXT),
        "name": draw(_TEXT),
        "email": draw(st.sampled_from(["ada@example.com", "o.brien+shop@example.org"])),
        "tier": draw(st.sampled_from(["standard", "vip"])),
        "region": draw(_TEXT),
    }
    for part in ("name", "line1", "city", "postal_code"):
        body["shipping_address"][part] = draw(_TEXT.filter(lambda t: len(t.strip()) <= 20))
    return body


def creates(operation: schemathesis.APIOperation) -> st.SearchStrategy[schemathesis.Case]:
    """Valid orders, each with an Idempotency-Key (the round sends each twice)."""
    return st.tuples(valid_orders(), _KEY).flatmap(
        lambda drawn: operation.as_strategy(body=drawn[0], headers={"Idempotency-Key": drawn[1]})
    )


async def seed_orders(api: Api) -> list[str]:
    """Real orders in the states where most commands apply."""

    async def in_status(payload: dict[str, Any], status: OrderStatus) -> str:
        order = await create(api, payload)
        await wait_status(api, order["id"], status)
        return str(order["id"])

    async def changes_requested() -> str:
        order_id = await in_status(big_order(), S.AWAITING_APPROVAL)
        sent_back = await api.http.post(
            f"/orders/{order_id}/request-changes",
            json={"reason": "split it"},
            headers=api.auth("lead-1"),
        )
        assert sent_back.status_code == 200, sent_back.text
        return order_id

    return list(
        await asyncio.gather(
            in_status(big_order(), S.AWAITING_APPROVAL),
            in_status(big_order(), S.AWAITING_APPROVAL),
            in_status(order_payload(), S.FULFILLING),
            in_status(order_payload(payment={"type": "bank_transfer"}), S.AWAITING_PAYMENT),
            changes_requested(),
        )
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("examples", "min_requests"),
    [
        pytest.param(SHORT, 400, id="short"),
        pytest.param(FULL, 1000, id="full", marks=pytest.mark.long),
    ],
)
async def test_every_operation_answers_as_documented(
    api: Api, examples: dict[GenerationMode, int], min_requests: int
) -> None:
    real_ids = await seed_orders(api)
    app = create_app(api.stack.settings, services=services_for(api.stack))
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: LAST.index(op.label) if op.label in LAST else -1)
    assert len(operations) == sum(len(methods) for methods in app.openapi()["paths"].values())
    by_label = {operation.label: operation for operation in operations}

    rounds = [Round(creates(by_label["POST /orders"]), 40, 2)]
    for operation in operations:
        for mode, count in examples.items():
            if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
                continue  # nothing to make invalid (GET /healthz)
            strategy = generated(operation, mode, real_ids)
            rounds.append(Round(strategy, count))

    server_errors = ServerErrors()
    loggers = [logging.getLogger(name) for name in ("orderly.api", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(server_errors)
    try:
        async with serve(app) as base_url:
            campaign = Campaign(base_url, api.auth("root"), server_errors)
            for round_ in rounds:
                cases = round_.draw()
                await asyncio.to_thread(campaign.send_all, cases, round_.times)
    finally:
        for logger in loggers:
            logger.removeHandler(server_errors)

    untried = {op.label for op in operations} - set(campaign.statuses)
    assert not untried, f"operations never called: {untried}"
    assert campaign.sent >= min_requests, campaign.statuses
    listed = await api.http.get("/orders", headers=api.auth("root"))
    assert listed.status_code == 200, f"the orders table after the fuzz: {listed.text}"
    assert not campaign.failures, campaign.report()


@pytest.mark.parametrize("settings_overrides", [{"command_wait": "PT1S", "sim_payment_delay": 3.0}])
async def test_commands_slower_than_the_wait_answer_as_documented(api: Api) -> None:
    """A payment captured, or a cancel refunded, through a slow gateway outlasts
    ``command_wait``: the API answers before the order is done, with a documented status."""
    paid = await create(api, order_payload(payment={"type": "bank_transfer"}))
    cancelled = await create(api, order_payload())
    await wait_status(api, paid["id"], S.AWAITING_PAYMENT, timeout=60)
    await wait_status(api, cancelled["id"], S.FULFILLING, timeout=60)
    app = create_app(api.stack.settings, services=services_for(api.stack))
    schema = schemathesis.openapi.from_dict(app.openapi())
    answers = []
    for order_id, command, body in [
        (paid["id"], "payments", {"amount": paid["total"], "token": "TRX-1"}),
        (cancelled["id"], "cancel", {"reason": "customer called"}),
    ]:
        response = await api.http.post(
            f"/orders/{order_id}/{command}", json=body, headers=api.auth("root")
        )
        operation = schema[f"/orders/{{order_id}}/{command}"]["POST"]
        answers.append(
            (operation.Case(path_parameters={"order_id": order_id}, body=body), response)
        )
    await wait_status(api, paid["id"], S.FULFILLING, timeout=60)
    await wait_status(api, cancelled["id"], S.CANCELLED, timeout=60)
    for _, response in answers:
        assert response.status_code in (200, 202), response.text
    failures = []
    for case, response in answers:
        try:
            case.validate_response(response, checks=CHECKS)
        except schemathesis.errors.FailureGroup as group:
            failures.append(str(group))
    assert not failures, "\n".join(failures)
