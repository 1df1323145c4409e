"""Temporal client construction and the policy snapshot every new order starts with."""

from __future__ import annotations

from temporalio.client import Client

from config import Settings, load_keyring
from domain.approval import ApprovalPolicy
from domain.policies import CreditRules
from security.codec import data_converter
from security.keyring import KeyRing
from workflows.contracts import OrderPolicy


async def connect(settings: Settings, keyring: KeyRing | None = None) -> Client:
    """The only way to a Temporal client: payloads and failures always encrypted."""
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(keyring or load_keyring(settings)),
    )


def order_policy(settings: Settings, approval: ApprovalPolicy) -> OrderPolicy:
    """What a new order is started with: settings and approval policy as they are now."""
    return OrderPolicy(
        approval=approval,
        credit_rules=CreditRules(review_above_ratio=settings.credit_review_ratio),
        payment_deadline=settings.payment_deadline,
        payment_reminder_after=settings.payment_reminder_after,
        delivery_sla=settings.delivery_sla,
        activity_timeout=settings.activity_timeout,
        activity_heartbeat=settings.activity_heartbeat,
    )
