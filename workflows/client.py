"""Temporal client construction and the policy snapshot every new order starts with."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config import Settings
from domain.approval import ApprovalPolicy
from domain.policies import CreditRules
from workflows.contracts import OrderPolicy


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
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
