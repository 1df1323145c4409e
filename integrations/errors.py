"""Errors raised by external parties, shared by their interfaces and simulators."""


class IntegrationError(Exception):
    """Base class. ``transient`` errors are worth retrying; the others are final."""

    transient = False


class TransientError(IntegrationError):
    transient = True


class PaymentDeclined(IntegrationError):
    pass


class RefundRefused(IntegrationError):
    pass


class OutOfStock(IntegrationError):
    pass
