"""Exceptions of the analog model.

Every class derives from `ValueError`, as `amc.model.config.ConfigError` does,
so a command-line front end can catch ``ValueError`` and print the message,
which names the rejected value and the fix.
"""

from __future__ import annotations

__all__ = [
    "ModelError",
    "InvalidOperandError",
    "ArrayCapacityError",
    "SingularMatrixError",
    "UnstableCircuitError",
    "CircuitBuildError",
    "MacroUsageError",
]


class ModelError(ValueError):
    """Base class of the errors the analog model raises for invalid requests."""


class InvalidOperandError(ModelError):
    """A matrix or vector that cannot be mapped: wrong shape, NaN or Inf, all zeros."""


class ArrayCapacityError(ModelError):
    """A matrix larger than one crossbar array."""


class SingularMatrixError(ModelError):
    """A singular (or numerically singular) matrix given to the INV solve."""


class UnstableCircuitError(ModelError):
    """A closed-loop circuit with a pole in the right half-plane.

    The INV circuit is stable only if every eigenvalue of D^-1 G has a positive
    real part and, with signed matrices, the inverter op-amps inside the loop
    do not add a growing mode. Hardware runs such a circuit to the rails.
    """


class CircuitBuildError(ModelError):
    """A switch state that does not form a circuit the model can build."""


class MacroUsageError(ModelError):
    """An event sequence the macro does not support, such as a sample before any enable."""
