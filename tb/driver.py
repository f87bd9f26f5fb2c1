"""Host driver of the AMC controller: registers, operations and faults.

`AmcDriver` speaks only to a `RegisterBus`, so the same code runs on the
model-only backend, the Amaranth simulator and cocotb (Icarus or Verilator).
This module is the register level: configure an operation, load DAC codes,
start, wait, read the ADC codes, and turn error bits into exceptions.
`amc.tb.host_ops` builds matrix-level operations (program, multiply, solve)
on top of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..model.switch_matrix import ModeEntry, mode_by_name
from ..rtl.params import ControllerParams
from ..rtl.regmap import ADC_WORD_OVERRANGE, ADC_WORD_VALID, ID_MAGIC, VERSION, ErrorBit, RegisterMap
from .bus import RegisterBus
from .errors import (
    AbortedError,
    AdcClipError,
    ConversionTimeoutError,
    DoneTimeoutError,
    IdentificationError,
    InvalidConfigError,
    SettleTimeoutError,
)

__all__ = ["Status", "OperationRequest", "OperationResult", "AmcDriver"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Status:
    """Decoded STATUS register."""

    word: int

    @property
    def busy(self) -> bool:
        return bool(self.word & 1)

    @property
    def done(self) -> bool:
        return bool(self.word & 2)

    @property
    def aborted(self) -> bool:
        return bool(self.word & 4)

    @property
    def errors(self) -> frozenset[ErrorBit]:
        return frozenset(bit for bit in ErrorBit if self.word >> int(bit) & 1)

    def __str__(self) -> str:
        flags = [name for name, on in (("busy", self.busy), ("done", self.done), ("aborted", self.aborted)) if on]
        flags += [bit.name.lower() for bit in sorted(self.errors)]
        return f"STATUS 0x{self.word:08x} ({', '.join(flags) or 'idle'})"


@dataclass(frozen=True)
class OperationRequest:
    """One analog operation as the host configures it."""

    mode: ModeEntry
    array: int
    rows: int
    cols: int
    signed: bool
    settle_cycles: int
    inputs: tuple[int, ...]
    """DAC codes, one per input line of the mode."""
    out_mask: int | None = None
    """Bit k converts output channel k; None converts every active output."""
    watchdog_cycles: int | None = None
    """None keeps the controller's reset value."""


@dataclass
class OperationResult:
    """ADC codes and bookkeeping of one finished operation."""

    request: OperationRequest
    codes: np.ndarray
    """Signed ADC code per active output channel (0 where not converted)."""
    overrange: np.ndarray
    converted: np.ndarray
    op_cycles: int
    clip_count: int
    status: Status
    start_cycle: int = 0
    end_cycle: int = 0
    errors: frozenset = field(default_factory=frozenset)


class AmcDriver:
    """Register-level host driver.

    Parameters
    ----------
    bus : RegisterBus
        The backend's register bus.
    params : ControllerParams
        Parameters the driver expects; `connect` checks them against the
        controller's identification registers.
    """

    def __init__(self, bus: RegisterBus, params: ControllerParams):
        self.bus = bus
        self.params = params
        self.regs = RegisterMap(params)
        self._watchdog = params.default_watchdog_cycles

    # Identification.

    async def connect(self) -> None:
        """Read the identification registers and check them against `params`; log the configuration."""
        regs = self.regs
        magic = await self.bus.read(regs["ID"].offset)
        if magic != ID_MAGIC:
            raise IdentificationError(
                f"ID register reads 0x{magic:08x}, expected 0x{ID_MAGIC:08x}: this is not an AMC controller"
            )
        version = await self.bus.read(regs["VERSION"].offset)
        if version >> 16 != VERSION >> 16:
            raise IdentificationError(
                f"register map version {version >> 16}.{version & 0xFFFF} is not supported by this driver "
                f"({VERSION >> 16}.{VERSION & 0xFFFF})"
            )
        found = {}
        for name in ("ROWS", "COLS", "ARRAYS", "CONVERTERS", "CLOCK_PERIOD_PS", "COUNTER_WIDTH"):
            found[name] = await self.bus.read(regs[name].offset)
        expected = {name: regs[name].reset for name in found}
        mismatched = [f"{name} = {found[name]:#x} (driver expects {expected[name]:#x})"
                      for name in found if found[name] != expected[name]]
        if mismatched:
            raise IdentificationError(
                "controller parameters differ from the driver's: " + "; ".join(mismatched)
                + "; build the controller and the driver from the same MacroConfig"
            )
        self._watchdog = await self.bus.read(regs["WATCHDOG_CYCLES"].offset)
        p = self.params
        log.info(
            "connected to AMC controller v%d.%d: %dx%d cells, %d arrays, %d-bit DAC, %d-bit ADC, clock %d ps",
            version >> 16, version & 0xFFFF, p.rows, p.cols, p.n_arrays, p.dac_bits, p.adc_bits,
            p.clock_period_ps,
        )

    # Registers.

    async def status(self) -> Status:
        return Status(await self.bus.read(self.regs["STATUS"].offset))

    async def clear_status(self) -> None:
        """Clear DONE, ABORTED and every error bit (write 1 to clear)."""
        await self.bus.write(self.regs["STATUS"].offset, 0xFFFF_FFFE)

    async def abort(self) -> None:
        await self.bus.write(self.regs["CTRL"].offset, 0b10)

    async def start(self) -> None:
        await self.bus.write(self.regs["CTRL"].offset, 0b01)

    async def write_dac(self, codes) -> None:
        """Write DAC codes to channels 0..len(codes)-1; each must fit the DAC width."""
        p = self.params
        lo, hi = -(1 << (p.dac_bits - 1)), (1 << (p.dac_bits - 1)) - 1
        codes = [int(c) for c in codes]
        if len(codes) > p.lines:
            raise ValueError(f"{len(codes)} DAC codes given, but the macro has {p.lines} DAC channels")
        for channel, code in enumerate(codes):
            if not lo <= code <= hi:
                raise ValueError(f"DAC code {code} on channel {channel} is outside {lo}..{hi} ({p.dac_bits}-bit DAC)")
            await self.bus.write(self.regs.dac.address(channel), code & 0xFFFF_FFFF)

    async def configure(self, request: OperationRequest) -> None:
        """Write the operation registers; values are checked by the controller at START."""
        regs = self.regs
        bus = self.bus
        await bus.write(regs["MODE"].offset, request.mode.code | (int(request.signed) << 8))
        await bus.write(regs["ARRAY"].offset, request.array)
        await bus.write(regs["ROWS_ACTIVE"].offset, request.rows)
        await bus.write(regs["COLS_ACTIVE"].offset, request.cols)
        await bus.write(regs["SETTLE_CYCLES"].offset, request.settle_cycles)
        if request.watchdog_cycles is not None and request.watchdog_cycles != self._watchdog:
            await bus.write(regs["WATCHDOG_CYCLES"].offset, request.watchdog_cycles)
            self._watchdog = request.watchdog_cycles
        outputs = request.mode.output_count(request.rows, request.cols)
        mask = request.out_mask if request.out_mask is not None else (1 << outputs) - 1
        for k in range(self.params.mask_words):
            await bus.write(regs.mask_register(k).offset, (mask >> (32 * k)) & 0xFFFF_FFFF)

    def max_operation_cycles(self, request: OperationRequest) -> int:
        """Return an upper bound of the cycles one operation can take, watchdogs included."""
        p = self.params
        watchdog = request.watchdog_cycles or self._watchdog
        lines = p.lines
        return 3 * lines + 4 + watchdog + request.settle_cycles + lines * (watchdog + 4) + 16

    async def wait_done(self, request: OperationRequest) -> Status:
        """Wait for the interrupt and return STATUS; raise DoneTimeoutError if it never comes."""
        limit = self.max_operation_cycles(request)
        if not await self.bus.wait_interrupt(limit):
            status = await self.status()
            raise DoneTimeoutError(
                f"the controller did not finish within {limit} cycles ({status}); the sequencer is stuck"
            )
        return await self.status()

    async def read_results(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read ADC words 0..count-1; return signed codes, over-range flags and valid flags."""
        codes = np.zeros(count, dtype=np.int64)
        overrange = np.zeros(count, dtype=bool)
        valid = np.zeros(count, dtype=bool)
        for channel in range(count):
            word = await self.bus.read(self.regs.adc.address(channel))
            code = word & 0xFFFF
            codes[channel] = code - 0x10000 if code & 0x8000 else code
            overrange[channel] = bool(word >> ADC_WORD_OVERRANGE & 1)
            valid[channel] = bool(word >> ADC_WORD_VALID & 1)
        return codes, overrange, valid

    # One operation.

    async def run(self, request: OperationRequest, *, raise_on_clip: bool = True) -> OperationResult:
        """Run one operation and return its ADC codes.

        Raises
        ------
        InvalidConfigError
            The controller rejected the configuration (the reason code is named).
        SettleTimeoutError, ConversionTimeoutError
            A watchdog expired.
        AbortedError
            The operation was aborted.
        AdcClipError
            A conversion clipped and `raise_on_clip` is True; the error carries the result.
        """
        n_inputs = request.mode.input_count(request.rows, request.cols)
        if len(request.inputs) != n_inputs:
            raise ValueError(
                f"{request.mode.name} with {request.rows} rows and {request.cols} columns takes {n_inputs} "
                f"inputs, got {len(request.inputs)}"
            )
        await self.write_dac(request.inputs)
        await self.configure(request)
        # The interrupt is the level of the sticky STATUS bits; earlier runs'
        # bits were reported already, and clearing them lets the wait below
        # see this run's completion.
        await self.clear_status()
        start_cycle = self.bus.now_cycles()
        await self.start()
        status = await self.wait_done(request)
        end_cycle = self.bus.now_cycles()
        errors = status.errors
        if ErrorBit.INVALID_CONFIG in errors:
            reason = await self.bus.read(self.regs["INVALID_REASON"].offset)
            raise InvalidConfigError(reason)
        if ErrorBit.SETTLE_TIMEOUT in errors:
            raise SettleTimeoutError(request.watchdog_cycles or self._watchdog)
        if ErrorBit.CONV_TIMEOUT in errors:
            raise ConversionTimeoutError(request.watchdog_cycles or self._watchdog)
        if status.aborted:
            raise AbortedError(f"the operation was aborted ({status})")

        outputs = request.mode.output_count(request.rows, request.cols)
        codes, overrange, valid = await self.read_results(outputs)
        op_cycles = await self.bus.read(self.regs["OP_CYCLES"].offset)
        clip_count = await self.bus.read(self.regs["CLIP_COUNT"].offset)
        result = OperationResult(
            request=request, codes=codes, overrange=overrange, converted=valid, op_cycles=op_cycles,
            clip_count=clip_count, status=status, start_cycle=start_cycle, end_cycle=end_cycle, errors=errors,
        )
        if ErrorBit.ADC_CLIP in errors and raise_on_clip:
            raise AdcClipError(np.flatnonzero(overrange).tolist(), result)
        return result

    def request(self, mode: str, *, array: int, rows: int, cols: int, inputs, signed: bool,
                settle_cycles: int, out_mask: int | None = None,
                watchdog_cycles: int | None = None) -> OperationRequest:
        """Build an `OperationRequest` from a mode name."""
        return OperationRequest(
            mode=mode_by_name(mode), array=array, rows=rows, cols=cols, signed=signed,
            settle_cycles=settle_cycles, inputs=tuple(int(c) for c in inputs), out_mask=out_mask,
            watchdog_cycles=watchdog_cycles,
        )
