"""Register-bus protocol that every backend implements for the host driver."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["RegisterBus"]


@runtime_checkable
class RegisterBus(Protocol):
    """What the host driver needs from a backend.

    Implementations: `amc.tb.cocotb_env.CocotbAxiLiteBus` (cocotbext-axi on
    Icarus or Verilator), `amc.tb.amaranth_axil.AmaranthAxiLiteBus` (Amaranth
    simulator) and `amc.tb.controller_model.ControllerModel` (model only).
    """

    async def read(self, address: int) -> int:
        """Read one 32-bit register; raise `BusError` on SLVERR."""

    async def write(self, address: int, value: int, strobe: int = 0xF) -> None:
        """Write one 32-bit register; raise `BusError` on SLVERR."""

    async def wait_interrupt(self, timeout_cycles: int) -> bool:
        """Wait until the controller's interrupt line is high; return False on timeout."""

    def now_cycles(self) -> int:
        """Return the simulated time in controller clock cycles."""
