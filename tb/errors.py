"""Exceptions the host driver raises; each names the fault the controller reported."""

from __future__ import annotations

from ..rtl.regmap import INVALID_REASON_DOCS, InvalidReason

__all__ = [
    "AmcError",
    "BusError",
    "IdentificationError",
    "InvalidConfigError",
    "AdcClipError",
    "SettleTimeoutError",
    "ConversionTimeoutError",
    "AbortedError",
    "DoneTimeoutError",
]


class AmcError(Exception):
    """Base class of every fault the driver reports."""


class BusError(AmcError):
    """The controller answered a register access with SLVERR."""

    def __init__(self, operation: str, address: int, resp: int):
        self.operation = operation
        self.address = address
        self.resp = resp
        super().__init__(
            f"AXI4-Lite {operation} at 0x{address:03x} answered SLVERR (resp {resp:#04b}): the address is "
            "unmapped or read-only, or the controller was busy; check the register map (docs/registers.md)"
        )


class IdentificationError(AmcError):
    """The controller's identification registers do not match the driver's parameters."""


class InvalidConfigError(AmcError):
    """START was rejected; `reason` is the controller's INVALID_REASON code."""

    def __init__(self, reason: int):
        try:
            self.reason = InvalidReason(reason)
            text = f"{self.reason.name}: {INVALID_REASON_DOCS[self.reason]}"
        except ValueError:
            self.reason = reason
            text = f"unknown reason code {reason}"
        super().__init__(f"the controller rejected the configuration ({text})")


class AdcClipError(AmcError):
    """At least one ADC conversion was beyond full scale; `result` holds the codes anyway."""

    def __init__(self, channels, result=None):
        self.channels = list(channels)
        self.result = result
        super().__init__(
            f"ADC clipping on output channel(s) {self.channels}: the analog output exceeded the ADC full scale; "
            "scale the input vector down"
        )


class SettleTimeoutError(AmcError):
    """The analog block did not report ready before the watchdog expired."""

    def __init__(self, watchdog_cycles: int):
        self.watchdog_cycles = watchdog_cycles
        super().__init__(
            f"settle timeout: the analog block did not raise ready within {watchdog_cycles} cycles after enable; "
            "check the analog supply and bias, or raise WATCHDOG_CYCLES"
        )


class ConversionTimeoutError(AmcError):
    """An ADC conversion did not complete before the watchdog expired."""

    def __init__(self, watchdog_cycles: int):
        self.watchdog_cycles = watchdog_cycles
        super().__init__(
            f"conversion timeout: an ADC conversion did not complete within {watchdog_cycles} cycles; "
            "check the ADC, or raise WATCHDOG_CYCLES above the conversion latency"
        )


class AbortedError(AmcError):
    """The operation was aborted before it finished."""


class DoneTimeoutError(AmcError):
    """The host waited longer than the operation can take without the controller finishing."""
