"""Register-level model of the controller: the model-only backend.

`ControllerModel` implements the `RegisterBus` protocol without a simulator.
It keeps the registers of `RegisterMap` with the RTL's access rules (SLVERR
cases included) and, at a START, runs the operation on the `AnalogMacro`
through `AnalogBridgeCore` at the cycle-exact times the RTL sequencer would
produce. That gives the same ADC codes as the Amaranth and cocotb backends for
the same seed, which `tests/cosim/test_cross_backend.py` checks.

Differences from the RTL: an operation completes within the START write, so
an abort written afterwards finds nothing to stop, and bus accesses take a
nominal number of cycles.
"""

from __future__ import annotations

import logging

from ..model.switch_matrix import Conn, mode_by_code
from ..rtl.params import ControllerParams
from ..rtl.regmap import Access, ErrorBit, InvalidReason, RegisterMap
from .bridge_core import AnalogBridgeCore, FaultInjection
from .errors import BusError

__all__ = ["ControllerModel", "sequencer_timeline"]

log = logging.getLogger(__name__)

BUS_ACCESS_CYCLES = 4
"""Nominal cycles of one register access (the RTL takes 3 to 5)."""


def sequencer_timeline(n_inputs: int, bias_ready_cycles: int, settle_cycles: int, adc_latency_cycles: int,
                       mask: list[bool], watchdog: int, *, ready_never: bool = False,
                       adc_hang: bool = False) -> dict:
    """Return the cycle of each analog event of one operation, relative to the accept edge.

    Mirrors `amc.rtl.sequencer.Sequencer` state by state (the module docstring
    there lists the states): 3 cycles per DAC channel, CONFIGURE and ENABLE,
    the ready wait, ``settle_cycles`` of SETTLE, then per output channel one
    CONV_NEXT cycle plus, when converted, CONV_SETUP, CONV_START and the
    converter latency.
    """
    enable = 3 * n_inputs + 2
    events = {"dac_loads": [3 * (i + 1) for i in range(n_inputs)], "enable": enable, "samples": [],
              "settle_timeout": False, "conv_timeout": False}
    if ready_never or bias_ready_cycles > watchdog:
        finish = enable + watchdog
        events["settle_timeout"] = True
    else:
        cycle = enable + bias_ready_cycles + settle_cycles
        finish = None
        for channel, converted in enumerate(mask):
            if not converted:
                cycle += 1
                continue
            start = cycle + 3
            events["samples"].append((channel, start))
            if adc_hang or adc_latency_cycles > watchdog:
                finish = start + watchdog
                events["conv_timeout"] = True
                break
            cycle = start + adc_latency_cycles
        if finish is None:
            finish = cycle + 1
    events["finish"] = finish
    events["disable"] = finish + 1
    events["op_cycles"] = finish + 1
    return events


class ControllerModel:
    """Model-only backend: registers and sequencing in Python, analog side from the model.

    Parameters
    ----------
    params : ControllerParams
    macro : AnalogMacro
    faults : FaultInjection, optional
    """

    def __init__(self, params: ControllerParams, macro, faults: FaultInjection | None = None):
        self.params = params
        self.regs = RegisterMap(params)
        self.core = AnalogBridgeCore(macro, params, faults)
        self.faults = self.core.faults
        self._values = {reg.name: reg.reset for reg in self.regs.registers}
        self._dac = [0] * params.lines
        self._adc = [0] * params.lines
        self._converted = 0
        self._status = 0
        self._cycle = 0
        self.transactions = 0
        log.info("%s", self.core.describe())

    # RegisterBus protocol.

    async def read(self, address: int) -> int:
        return self.read_now(address)

    async def write(self, address: int, value: int, strobe: int = 0xF) -> None:
        self.write_now(address, value, strobe)

    async def wait_interrupt(self, timeout_cycles: int) -> bool:
        return self._irq()

    def now_cycles(self) -> int:
        return self._cycle

    # Synchronous access, usable without an event loop.

    def read_now(self, address: int) -> int:
        self._tick()
        regs = self.regs
        if regs.dac.contains(address):
            code = self._dac[(address - regs.dac.offset) >> 2]
            return code & 0xFFFF_FFFF
        if regs.adc.contains(address):
            channel = (address - regs.adc.offset) >> 2
            return self._adc[channel] | ((self._converted >> channel & 1) << 31)
        reg = self._register_at(address)
        if reg is None:
            self._status |= 1 << ErrorBit.BUS_ERROR
            raise BusError("read", address, 0b10)
        if reg.access is Access.WO:
            return 0
        if reg.name == "STATUS":
            return self._status
        return self._values[reg.name]

    def write_now(self, address: int, value: int, strobe: int = 0xF) -> None:
        self._tick()
        regs = self.regs
        value &= 0xFFFF_FFFF
        if regs.dac.contains(address):
            if strobe & 0b11 == 0b11:
                bits = self.params.dac_bits
                code = value & ((1 << bits) - 1)
                self._dac[(address - regs.dac.offset) >> 2] = code - (1 << bits) if code >> (bits - 1) else code
            return
        reg = self._register_at(address)
        if reg is None or reg.access is Access.RO:
            self._status |= 1 << ErrorBit.BUS_ERROR
            raise BusError("write", address, 0b10)
        lanes = sum(0xFF << (8 * lane) for lane in range(4) if strobe >> lane & 1)
        if reg.name == "CTRL":
            if value & lanes & 1:
                self._start()
            return
        if reg.name == "STATUS":
            self._status &= ~(value & lanes & ~1)
            return
        old = self._values[reg.name]
        merged = (old & ~lanes) | (value & lanes)
        self._values[reg.name] = merged & self._field_mask(reg.name)

    # Internals.

    def _tick(self) -> None:
        self.transactions += 1
        self._cycle += BUS_ACCESS_CYCLES

    def _irq(self) -> bool:
        return bool(self._status & ~1)

    def _register_at(self, address: int):
        for reg in self.regs.registers:
            if reg.offset == address & ~3:
                return reg
        return None

    def _field_mask(self, name: str) -> int:
        p = self.params
        widths = {
            "MODE": 0x10F, "ARRAY": 0xFF, "ROWS_ACTIVE": 0xFFFF, "COLS_ACTIVE": 0xFFFF,
            "SETTLE_CYCLES": (1 << p.counter_width) - 1, "WATCHDOG_CYCLES": (1 << p.counter_width) - 1,
        }
        if name.startswith("OUT_MASK"):
            index = int(name[len("OUT_MASK"):])
            return (1 << max(0, min(32, p.lines - 32 * index))) - 1
        return widths[name]

    def _check(self) -> InvalidReason:
        """Return the first failing check, in the order of `amc.rtl.op_check.OperationCheck`."""
        p = self.params
        v = self._values
        try:
            mode = mode_by_code(v["MODE"] & 0xF)
        except KeyError:
            return InvalidReason.UNKNOWN_MODE
        if not mode.host:
            return InvalidReason.ENGINE_MODE
        rows, cols = v["ROWS_ACTIVE"], v["COLS_ACTIVE"]
        mask = self._mask()
        outputs = mode.output_count(rows, cols)
        if v["ARRAY"] >= p.n_arrays:
            return InvalidReason.ARRAY_OUT_OF_RANGE
        if rows == 0 or rows > p.rows:
            return InvalidReason.ROWS_OUT_OF_RANGE
        if cols == 0 or cols > p.cols:
            return InvalidReason.COLS_OUT_OF_RANGE
        if mode.square and rows != cols:
            return InvalidReason.NOT_SQUARE
        if mask == 0:
            return InvalidReason.EMPTY_OUTPUT_MASK
        if mask >> outputs:
            return InvalidReason.MASK_BEYOND_OUTPUTS
        if v["SETTLE_CYCLES"] == 0:
            return InvalidReason.ZERO_SETTLE
        if v["WATCHDOG_CYCLES"] == 0:
            return InvalidReason.ZERO_WATCHDOG
        return InvalidReason.NONE

    def _mask(self) -> int:
        return sum(self._values[f"OUT_MASK{k}"] << (32 * k) for k in range(self.params.mask_words))

    def _start(self) -> None:
        keep = self._status & (1 << ErrorBit.BUS_ERROR)
        reason = self._check()
        self._values["INVALID_REASON"] = int(reason)
        if reason is not InvalidReason.NONE:
            self._status = keep | (1 << ErrorBit.INVALID_CONFIG)
            return
        self._status = keep
        self._run()

    def _run(self) -> None:
        p = self.params
        v = self._values
        mode = mode_by_code(v["MODE"] & 0xF)
        signed = bool(v["MODE"] >> 8 & 1)
        rows, cols = v["ROWS_ACTIVE"], v["COLS_ACTIVE"]
        n_inputs = mode.input_count(rows, cols)
        outputs = mode.output_count(rows, cols)
        mask_bits = self._mask()
        mask = [bool(mask_bits >> channel & 1) for channel in range(outputs)]
        timeline = sequencer_timeline(
            n_inputs, p.bias_ready_cycles, v["SETTLE_CYCLES"], p.adc_latency_cycles, mask,
            v["WATCHDOG_CYCLES"], ready_never=self.faults.ready_never, adc_hang=self.faults.adc_hang,
        )
        period = p.clock_period_ps
        origin = self._cycle + 1
        core = self.core

        for channel in range(n_inputs):
            core.on_dac_load(channel, self._dac[channel] & ((1 << p.dac_bits) - 1))
        conn = int(mode.conn) | (int(Conn.NEG_INVERTERS) if signed else 0)
        row_en = (1 << rows) - 1
        col_en = (1 << cols) - 1
        core.on_enable((origin + timeline["enable"]) * period, conn, 1 << v["ARRAY"], row_en, col_en)

        self._converted = 0
        clip_count = 0
        last = len(timeline["samples"]) - 1
        for position, (channel, cycle) in enumerate(timeline["samples"]):
            answer = core.on_adc_start((origin + cycle) * period, channel)
            if answer is None or (timeline["conv_timeout"] and position == last):
                break
            code = answer.code_bits
            bits = p.adc_bits
            signed_code = code - (1 << bits) if code >> (bits - 1) else code
            self._adc[channel] = (signed_code & 0xFFFF) | (int(answer.overrange) << 16)
            self._converted |= 1 << channel
            clip_count += int(answer.overrange)
        core.on_disable((origin + timeline["disable"]) * period)

        status = 1 << 1
        if clip_count:
            status |= 1 << ErrorBit.ADC_CLIP
        if timeline["settle_timeout"]:
            status |= 1 << ErrorBit.SETTLE_TIMEOUT
        if timeline["conv_timeout"]:
            status |= 1 << ErrorBit.CONV_TIMEOUT
        self._status |= status
        self._values["OP_CYCLES"] = timeline["op_cycles"]
        self._values["CLIP_COUNT"] = clip_count
        self._values["OP_COUNT"] = (self._values["OP_COUNT"] + 1) & 0xFFFF_FFFF
        self._cycle = origin + timeline["disable"]
