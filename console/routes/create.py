"""The new-order form for sales and intake: customer, lines, currency, address, payment; a live
price preview computed with the domain's own rules; submit creates the order once per form.

The form is parsed into the same ``OrderSpec`` the API takes and goes through
``Orders.create``: totals are never taken from the browser, and the idempotency key is a random
hidden field of each rendered form, so a double submit (or a reload of the POST) makes one order.

``GET /console/orders/new?template=<id>`` starts the form from an active template
(:func:`template_form`): its customer, address, payment method and sales rep, and its lines
priced from the price list now. Such a form is submitted through ``Templates.use`` (the one use
case that records the template and version on an order, as ``POST /orders/from-template``
does): quantities (0 drops a line), customer, address, payment and reference are its overrides;
SKUs, prices, currency and sales rep come from the template and the list, so they are read-only
here. The template's card token is never put in the page: an empty token uses the template's.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.errors import STATUS
from console.auth import Sales, ServicesDep, Viewer
from console.i18n import translator
from console.web import language_of, page, redirect
from domain.money import CURRENCY_EXPONENTS, check_amount, check_currency
from domain.order import MAX_LINES, OrderLine, OrderSource, OrderSpec, PaymentType
from domain.pricing import TemplateOverrides, discounted
from services.analytics import Analytics
from services.context import Services
from services.errors import Kind, ServiceError, not_found
from services.orders import Orders
from services.prices import PriceFilter, Prices
from services.templates import Templates, TemplateSummary, TemplateView

router = APIRouter(prefix="/console/orders/new", include_in_schema=False)
MIN_ROWS = 3
VALUE_LIMIT = 1000  # characters kept of any one field (the spec's own limits are lower)
FORM_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TEMPLATE_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")
LINE_FIELDS = ("sku", "quantity", "unit_price", "list_price")
# Form fields outside the lines: the name is the field's path in OrderSpec.
FIELDS = (
    "customer.id",
    "customer.name",
    "customer.email",
    "customer.tier",
    "customer.region",
    "currency",
    "shipping_address.name",
    "shipping_address.line1",
    "shipping_address.line2",
    "shipping_address.city",
    "shipping_address.postal_code",
    "shipping_address.country",
    "payment_method.type",
    "payment_method.token",
    "sales_rep",
    "external_reference",
    "template.id",  # a form started from a template: which one, and the version it showed
    "template.version",
)
DEFAULTS = {"currency": "EUR", "payment_method.type": PaymentType.CARD.value}
_PREFIXED = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)?): (.+)$", re.DOTALL)


@dataclass
class LineRow:
    """One line row as typed; ``uid`` makes its input ids unique on the page."""

    uid: str
    sku: str = ""
    quantity: str = ""
    unit_price: str = ""
    list_price: str = ""

    @property
    def blank(self) -> bool:
        return not any(getattr(self, name) for name in LINE_FIELDS)

    def payload(self) -> dict[str, Any]:
        quantity: Any = self.quantity
        if re.fullmatch(r"[+-]?\d{1,12}", self.quantity):
            quantity = int(self.quantity)  # the spec's quantity is a strict integer
        line: dict[str, Any] = {
            "sku": self.sku,
            "quantity": quantity,
            "unit_price": self.unit_price,
        }
        if self.list_price:
            line["list_price"] = self.list_price
        return line


@dataclass
class OrderForm:
    """What the form holds: the values as typed (kept on a refusal) and its idempotency key."""

    values: dict[str, str] = field(default_factory=dict)
    lines: list[LineRow] = field(default_factory=list)
    form_key: str = ""

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    @classmethod
    def parse(cls, form: FormData) -> OrderForm:
        def text(name: str) -> str:
            value = form.get(name, "")
            return value.strip()[:VALUE_LIMIT] if isinstance(value, str) else ""

        columns = {
            name: [v.strip()[:VALUE_LIMIT] for v in form.getlist(name) if isinstance(v, str)]
            for name in LINE_FIELDS
        }
        count = min(max(len(c) for c in columns.values()), MAX_LINES + 1)
        lines = [
            LineRow(
                uid=str(i),
                **{n: columns[n][i] if i < len(columns[n]) else "" for n in LINE_FIELDS},
            )
            for i in range(count)
        ]
        return cls(
            values={name: text(name) for name in FIELDS},
            lines=lines,
            form_key=text("form_key"),
        )

    def filled(self) -> list[tuple[int, LineRow]]:
        """The rows with anything typed in, with their row index (from a template: without
        the lines whose quantity is 0, which drops them)."""
        drops = bool(self.get("template.id"))
        return [
            (i, r)
            for i, r in enumerate(self.lines)
            if not r.blank and not (drops and r.quantity == "0")
        ]

    def payload(self) -> dict[str, Any]:
        """The form as an OrderSpec body (empty optional fields left out)."""
        v = self.get
        customer = {k: v(f"customer.{k}") for k in ("id", "name", "email", "region")}
        if v("customer.tier"):
            customer["tier"] = v("customer.tier")
        address = {
            k: v(f"shipping_address.{k}") for k in ("name", "line1", "line2", "city", "postal_code")
        }
        address["country"] = v("shipping_address.country").upper()
        return {
            "customer": customer,
            "lines": [row.payload() for _, row in self.filled()],
            "currency": v("currency").upper(),
            "shipping_address": address,
            "payment_method": {
                "type": v("payment_method.type"),
                "token": v("payment_method.token"),
            },
            "sales_rep": v("sales_rep") or None,
            "external_reference": v("external_reference") or None,
            "source": OrderSource.CONSOLE.value,
        }


def new_form_key() -> str:
    return secrets.token_urlsafe(24)


def blank_form() -> OrderForm:
    """An empty form with a fresh key (:func:`template_form` starts one from a template)."""
    rows = [LineRow(uid=str(i)) for i in range(MIN_ROWS)]
    return OrderForm(values=dict(DEFAULTS), lines=rows, form_key=new_form_key())


# --- problems: pydantic's and the use case's, each keyed by the form field it is about -------


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _field_of(loc: tuple[int | str, ...], message: str) -> tuple[str, str]:
    """(spec path, reason) of one validation error; model-level errors name their field in
    the message (``lines[0].unit_price: ...``, ``name: ...``)."""
    path = _path(loc)
    reason = message.removeprefix("Value error, ")
    prefixed = _PREFIXED.match(reason)
    if prefixed:
        inner, reason = prefixed.groups()
        path = f"{path}.{inner}" if path else inner
    elif not path and "currency" in reason:
        path = "currency"
    elif not path and reason.startswith("order total"):
        path = "lines"
    elif path == "payment_method" and "token" in reason:
        path = "payment_method.token"
    return path, reason


def _to_row(path: str, rows: list[int]) -> str:
    """``lines[1].quantity`` of the spec → the same field of the form row it came from."""
    found = re.match(r"^lines\[(\d+)\](.*)$", path)
    if found and int(found.group(1)) < len(rows):
        return f"lines[{rows[int(found.group(1))]}]{found.group(2)}"
    return path


def spec_problems(exc: ValidationError, form: OrderForm) -> dict[str, str]:
    rows = [i for i, _ in form.filled()]
    problems: dict[str, str] = {}
    for err in exc.errors():
        path, reason = _field_of(tuple(err.get("loc", ())), str(err.get("msg", "invalid")))
        problems.setdefault(_to_row(path, rows), reason)
    currency = form.get("currency").upper()
    if "currency" not in problems and re.fullmatch(r"[A-Z]{3}", currency):
        try:  # the spec checks it only once every field is valid: say it now
            check_currency(currency)
        except ValueError as unknown:
            problems["currency"] = str(unknown)
    return problems


def service_problems(exc: ServiceError) -> dict[str, str]:
    listed = exc.extra.get("fields") or []
    found = {str(f["field"]): str(f["reason"]) for f in listed if isinstance(f, dict)}
    if found:
        return found
    prefixed = _PREFIXED.match(exc.message)
    if prefixed:
        return {prefixed.group(1): prefixed.group(2)}
    return {"": exc.message}


# --- the live preview: line totals, discounts and the total, computed by domain code --------


SUGGESTIONS = 3  # lines suggested under the totals


@dataclass
class PreviewLine:
    row: int
    sku: str
    line: OrderLine | None
    problem: str | None = None

    @property
    def discount(self) -> Decimal:
        if self.line is None or not self.line.list_price:
            return Decimal(0)
        return max(self.line.list_price - self.line.unit_price, Decimal(0)) * self.line.quantity


@dataclass
class Preview:
    currency: str
    currency_problem: str | None
    lines: list[PreviewLine]
    total: Decimal
    list_total: Decimal
    discount: Decimal
    max_discount_pct: Decimal
    review_pct: Decimal
    incomplete: bool


def preview(form: OrderForm, services: Services) -> Preview:
    currency = form.get("currency").upper()
    currency_problem = None
    try:
        check_currency(currency)
    except ValueError as exc:
        currency_problem = str(exc)
    lines = []
    for i, row in form.filled():
        try:
            line = OrderLine.model_validate(row.payload())
            if currency_problem is None:
                for amount in (line.unit_price, line.list_price):
                    if amount is not None:
                        check_amount(amount, currency)
            lines.append(PreviewLine(row=i, sku=row.sku, line=line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = _path(tuple(first.get("loc", ())))
            reason = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
            lines.append(PreviewLine(row=i, sku=row.sku, line=None, problem=reason))
        except ValueError as exc:
            lines.append(PreviewLine(row=i, sku=row.sku, line=None, problem=str(exc)))
    good = [p.line for p in lines if p.line is not None]
    total = sum((line.total() for line in good), Decimal(0))
    return Preview(
        currency=currency if currency_problem is None else "",
        currency_problem=currency_problem,
        lines=lines,
        total=total,
        list_total=total + sum((p.discount for p in lines), Decimal(0)),
        discount=sum((p.discount for p in lines), Decimal(0)),
        max_discount_pct=max((line.discount_pct() for line in good), default=Decimal(0)),
        review_pct=services.approval_policy.max_discount_pct,
        incomplete=any(p.line is None for p in lines),
    )


# --- starting from a template ----------------------------------------------------------------


async def template_form(
    services: Services, template_id: str
) -> tuple[OrderForm, TemplateView, dict[str, str]]:
    """A fresh form from the template's current version with its lines priced from the price
    list now; the template; and what would stop it now (a line without a price, validity)."""
    view = await Templates(services).get(template_id)
    if view.archived_at is not None:
        raise ServiceError(Kind.CONFLICT, f"template {view.id} is archived", code="archived")
    now, prices = datetime.now(UTC), Prices(services)
    problems: dict[str, str] = {}
    rows = []
    for i, line in enumerate(view.lines):
        row = LineRow(uid=str(i), sku=line.sku, quantity=str(line.quantity))
        found = await prices.list(PriceFilter(line.sku, view.currency, now), limit=1, cursor=None)
        if found.items:  # priced as Templates.use prices it (domain.pricing.order_spec)
            listed = found.items[0].list_price
            row.unit_price = str(discounted(listed, line.discount_pct, view.currency))
            row.list_price = str(discounted(listed, None, view.currency))
        else:
            problems[f"lines[{i}].sku"] = f"no list price in {view.currency} valid now"
        rows.append(row)
    if view.valid_from is not None and now < view.valid_from:
        problems["template"] = f"the template is valid from {view.valid_from.isoformat()}"
    if view.valid_until is not None and now >= view.valid_until:
        problems["template"] = f"the template expired at {view.valid_until.isoformat()}"
    values = {**DEFAULTS, "currency": view.currency, "sales_rep": view.sales_rep or ""}
    values |= {"template.id": view.id, "template.version": str(view.version)}
    for part in ("customer", "shipping_address", "payment_method"):
        model = getattr(view, part)
        for key, value in (model.model_dump(mode="json") if model else {}).items():
            if f"{part}.{key}" in FIELDS and key != "token":  # the token stays sealed
                values[f"{part}.{key}"] = str(value)
    return OrderForm(values=values, lines=rows, form_key=new_form_key()), view, problems


def overrides_of(form: OrderForm, view: TemplateView) -> dict[str, Any]:
    """The form as the template's overrides (a TemplateOverrides body)."""
    body = form.payload()
    quantities: dict[str, Any] = {}
    for row in form.lines:
        if not row.blank:
            digits = re.fullmatch(r"\d{1,12}", row.quantity)
            quantities[row.sku] = int(row.quantity) if digits else row.quantity
    payment = body["payment_method"]
    if not payment["token"] and view.payment_method and view.payment_method.type == payment["type"]:
        payment = None  # the template's own, token and all
    keep = ("customer", "shipping_address", "external_reference", "source")
    return {"quantities": quantities, "payment_method": payment} | {k: body[k] for k in keep}


def _on_form(path: str, form: OrderForm) -> str:
    """A problem's field named as the form names it (``quantities.SKU`` is that line's row)."""
    sku = path.removeprefix("quantities.")
    rows = [i for i, row in enumerate(form.lines) if path != sku and row.sku == sku]
    return f"lines[{rows[0]}].quantity" if rows else path


async def _from_template(
    request: Request, viewer: Viewer, services: Services, form: OrderForm
) -> Response:
    templates, t = Templates(services), translator(language_of(request, viewer))
    try:
        view = await templates.get(form.get("template.id"))
    except ServiceError as exc:
        return _form_page(request, form, services, service_problems(exc), STATUS[exc.kind])
    problem = None
    if view.archived_at is not None:
        problem = t("The template was archived after this form was opened.")
    elif str(view.version) != form.get("template.version"):
        problem = t(
            "The template was changed after this form was opened (it is at version {n} now): "
            "start from it again.",
            n=view.version,
        )
    if problem is not None:
        return _form_page(request, form, services, {"template": problem}, 409, view)
    try:
        overrides = TemplateOverrides.model_validate(overrides_of(form, view))
    except ValidationError as exc:
        found = [_field_of(tuple(e["loc"]), str(e["msg"])) for e in exc.errors()]
        problems = {_on_form(path, form): reason for path, reason in reversed(found)}
        return _form_page(request, form, services, problems, 422, view)
    key = f"console-form:{form.form_key}"
    try:
        order, _created = await templates.use(view.id, overrides, viewer.user.principal, key)
    except ServiceError as exc:
        request.state.audit_reason = exc.message
        if exc.kind is not Kind.UNAVAILABLE:
            form.form_key = new_form_key()
        problems = {_on_form(k, form): v for k, v in service_problems(exc).items()}
        return _form_page(request, form, services, problems, STATUS[exc.kind], view)
    return redirect(request, f"/console/orders/{order.id}")


# --- pages ----------------------------------------------------------------------------------


def _form_page(
    request: Request,
    form: OrderForm,
    services: Services,
    problems: dict[str, str] | None = None,
    status: int = 200,
    template: TemplateView | None = None,
    choices: list[TemplateSummary] | None = None,
) -> Response:
    context = {
        "form": form,
        "problems": problems or {},
        "preview": preview(form, services),
        "currencies": [(code, code) for code in sorted(CURRENCY_EXPONENTS)],
        "template": template,
        "choices": choices or [],
    }
    return page(request, "create.html", context, status=status)


@router.get("")
async def new_order_form(
    request: Request,
    _viewer: Sales,
    services: ServicesDep,
    template: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The empty new-order form (or one started from ``template``), with a fresh key."""
    listed = await Templates(services).list(
        archived=False, customer_id=None, limit=200, cursor=None
    )
    if not template:
        return _form_page(request, blank_form(), services, choices=listed.items)
    try:
        if not TEMPLATE_ID.match(template):
            raise not_found(f"template {template[:32]}")
        form, view, problems = await template_form(services, template)
    except ServiceError as exc:
        problems = {"template": exc.message}
        return _form_page(
            request, blank_form(), services, problems, STATUS[exc.kind], choices=listed.items
        )
    return _form_page(request, form, services, problems, template=view)


@router.post("")
async def create_order(request: Request, viewer: Sales, services: ServicesDep) -> Response:
    """Create the order from the form (once per form key) and open its page."""
    sent = await request.form()
    form = OrderForm.parse(sent)
    if sent.get("add_line") and not form.get("template.id"):  # without JavaScript
        form.lines.append(LineRow(uid=str(len(form.lines))))
        return _form_page(request, form, services)
    if not FORM_KEY.match(form.form_key):
        form.form_key = new_form_key()
        t = translator(language_of(request, viewer))
        problems = {"form_key": t("missing or malformed: submit the form again")}
        return _form_page(request, form, services, problems, status=422)
    if form.get("template.id"):
        return await _from_template(request, viewer, services, form)
    return await _create(request, viewer, services, form)


async def _create(
    request: Request, viewer: Viewer, services: Services, form: OrderForm
) -> Response:
    try:
        spec = OrderSpec.model_validate(form.payload())
    except ValidationError as exc:
        problems = spec_problems(exc, form)
        request.state.audit_reason = "new-order form: " + "; ".join(problems)[:500]
        return _form_page(request, form, services, problems, status=422)
    try:
        order, _created = await Orders(services).create(
            spec, viewer.user.principal, f"console-form:{form.form_key}"
        )
    except ServiceError as exc:
        request.state.audit_reason = exc.message
        if exc.kind is not Kind.UNAVAILABLE:
            # Nothing was started under this key: a corrected form must not reuse it (its
            # body differs). After "unavailable" the same form is retried with the same key.
            form.form_key = new_form_key()
        return _form_page(request, form, services, service_problems(exc), STATUS[exc.kind])
    return redirect(request, f"/console/orders/{order.id}")


@router.post("/preview")
async def preview_totals(request: Request, viewer: Sales, services: ServicesDep) -> Response:
    """The totals panel for the form as typed so far (htmx, while typing), with lines that
    customers often order with these (the analytics run's association rules)."""
    form = OrderForm.parse(await request.form())
    skus = sorted({row.sku for _, row in form.filled() if row.sku})
    suggestions = (
        (
            await Analytics.of(services).recommendations(
                viewer.user.principal, skus=skus, limit=SUGGESTIONS
            )
        ).suggestions
        if skus
        else []
    )
    context = {"preview": preview(form, services), "suggestions": suggestions}
    return page(request, "_create_totals.html", context)


@router.post("/line")
async def one_more_line(request: Request, _viewer: Sales) -> Response:
    """One more empty line row (htmx appends it to the lines table)."""
    sent = await request.form()
    number = len(sent.getlist("sku")) + 1
    row = LineRow(uid=f"n{secrets.token_hex(4)}")
    context = {"row": row, "number": number, "problems": {}, "index": None}
    return page(request, "_create_line.html", context)
