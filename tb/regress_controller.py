"""cocotb regression of the controller's bus, sequencing and fault handling.

These tests check the controller, not the analog model, so a `FakeMacro`
answers the conversions with codes that identify channel and inputs. Bus
tests run twice: with an idle bus manager and with backpressure on every
AXI4-Lite channel. `tests/cosim/test_controller_cosim.py` runs each test on
Icarus and on Verilator.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools

import cocotb

from ..rtl.regmap import ErrorBit, InvalidReason, RegisterMap
from .bridge_core import FaultInjection
from .cocotb_env import AmcTestbench, params_from_env
from .controller_model import sequencer_timeline
from .errors import (
    AdcClipError,
    BusError,
    ConversionTimeoutError,
    InvalidConfigError,
    SettleTimeoutError,
)
from .fake_macro import FakeMacro

BACKPRESSURE = [False, True]


def _pause_pattern():
    """Pause the bus channels two cycles out of five."""
    return itertools.cycle([0, 1, 0, 1, 0])


async def _testbench(dut, backpressure=False, faults=None, overrange=frozenset()):
    params = params_from_env()
    macro = FakeMacro(params.macro, overrange_channels=overrange)
    tb = AmcTestbench(dut, params, macro=macro, faults=faults)
    await tb.start()
    if backpressure:
        tb.set_backpressure(_pause_pattern)
    return tb, macro, RegisterMap(params)


@cocotb.test()
async def identification(dut):
    """The identification registers describe the parameters the runner passed."""
    tb, _, regs = await _testbench(dut)
    for name in ("ID", "VERSION", "ROWS", "COLS", "ARRAYS", "CONVERTERS", "CLOCK_PERIOD_PS", "MODES"):
        value = await tb.bus.read(regs[name].offset)
        assert value == regs[name].reset, f"{name} reads {value:#x}, expected {regs[name].reset:#x}"


@cocotb.test()
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def register_access(dut, backpressure):
    """Configuration registers read back what was written, field widths applied; byte writes merge."""
    tb, _, regs = await _testbench(dut, backpressure)
    writes = {"ARRAY": (0x1FF, 0xFF), "ROWS_ACTIVE": (0x1_2345, 0x2345), "SETTLE_CYCLES": (0xABC_DEF0, 0xBC_DEF0),
              "WATCHDOG_CYCLES": (77, 77), "MODE": (0xFFFF_FF02, 0x102)}
    for name, (value, _) in writes.items():
        await tb.bus.write(regs[name].offset, value)
    for name, (_, expected) in writes.items():
        value = await tb.bus.read(regs[name].offset)
        assert value == expected, f"{name} reads {value:#x}, expected {expected:#x}"

    await tb.bus.write(regs["SETTLE_CYCLES"].offset, 0x11_2233)
    await tb.bus.write(regs["SETTLE_CYCLES"].offset, 0xAA_BBCC, strobe=0b0100)
    assert await tb.bus.read(regs["SETTLE_CYCLES"].offset) == 0xAA_2233

    codes = [-128, 127, -1, 0, 42]
    await tb.driver.write_dac(codes)
    for channel, code in enumerate(codes):
        assert await tb.bus.read(regs.dac.address(channel)) == code & 0xFFFF_FFFF


@cocotb.test()
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def bad_address(dut, backpressure):
    """Unmapped and read-only addresses answer SLVERR and set STATUS.bus_error until cleared."""
    tb, _, regs = await _testbench(dut, backpressure)
    cases = [("read", 0x3F0), ("write", 0x3F0), ("write", regs["ID"].offset),
             ("write", regs.adc.address(0)), ("read", regs.adc.offset + 4 * regs.adc.depth)]
    for operation, address in cases:
        try:
            if operation == "read":
                await tb.bus.read(address)
            else:
                await tb.bus.write(address, 0x5A5A)
        except BusError as error:
            assert error.address == address
            assert error.resp == 0b10
        else:
            raise AssertionError(f"{operation} at {address:#x} did not answer SLVERR")
        status = await tb.driver.status()
        assert ErrorBit.BUS_ERROR in status.errors, str(status)
        await tb.driver.clear_status()
        assert ErrorBit.BUS_ERROR not in (await tb.driver.status()).errors


INVALID_CHANGES = {
    InvalidReason.UNKNOWN_MODE: {"MODE": 9},
    InvalidReason.ARRAY_OUT_OF_RANGE: {"ARRAY": 200},
    InvalidReason.ROWS_OUT_OF_RANGE: {"ROWS_ACTIVE": 0},
    InvalidReason.NOT_SQUARE: {"COLS_ACTIVE": 2},
    InvalidReason.EMPTY_OUTPUT_MASK: {"OUT_MASK0": 0},
    InvalidReason.MASK_BEYOND_OUTPUTS: {"OUT_MASK0": 0b1_0000},
    InvalidReason.ZERO_SETTLE: {"SETTLE_CYCLES": 0},
    InvalidReason.ZERO_WATCHDOG: {"WATCHDOG_CYCLES": 0},
}
"""Register writes that turn a valid 4x4 INV configuration into one rejected for each reason."""


class Fault(enum.Enum):
    READY_NEVER = "ready_never"
    ADC_HANG = "adc_hang"


@cocotb.test()
@cocotb.parametrize(reason=list(INVALID_CHANGES))
async def invalid_config(dut, reason):
    """An invalid configuration sets INVALID_CONFIG with its reason and starts nothing."""
    changes = INVALID_CHANGES[reason]
    tb, macro, regs = await _testbench(dut)
    request = tb.driver.request("INV", array=0, rows=4, cols=4, inputs=[1, 2, 3, 4], signed=False,
                                settle_cycles=10)
    await tb.driver.write_dac(request.inputs)
    await tb.driver.configure(request)
    for name, value in changes.items():
        await tb.bus.write(regs[name].offset, value)
    await tb.driver.start()
    status = await tb.driver.wait_done(request)
    assert ErrorBit.INVALID_CONFIG in status.errors
    assert not status.done
    assert await tb.bus.read(regs["INVALID_REASON"].offset) == reason
    assert await tb.bus.read(regs["OP_COUNT"].offset) == 0
    assert not [event for event in macro.events if event[0] == "enable"]

    # The same configuration through the driver raises with the reason named.
    try:
        await tb.driver.run(dataclasses.replace(request, out_mask=0))
    except InvalidConfigError as error:
        assert error.reason is not InvalidReason.NONE
    else:
        raise AssertionError("driver.run did not raise InvalidConfigError")


@cocotb.test()
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def sequencer_timing(dut, backpressure):
    """DAC loads, samples and disable happen at the cycles of the documented timeline."""
    tb, macro, _ = await _testbench(dut, backpressure)
    params = tb.params
    mask = 0b1011_0101
    request = tb.driver.request("INV", array=3, rows=8, cols=8, inputs=[3, -2, 1, 0, 7, -8, 5, 4],
                                signed=True, settle_cycles=57, out_mask=mask)
    result = await tb.driver.run(request)
    timeline = sequencer_timeline(8, params.bias_ready_cycles, 57, params.adc_latency_cycles,
                                  [bool(mask >> c & 1) for c in range(8)], params.default_watchdog_cycles)
    period = params.clock_period_ps
    samples = [(event[1] // period, event[2]) for event in macro.events if event[0] == "sample"]
    assert samples == [(cycle - timeline["enable"], channel) for channel, cycle in timeline["samples"]]
    assert result.op_cycles == timeline["op_cycles"]
    enable = [event for event in macro.events if event[0] == "enable"][0]
    assert enable[2:] == ("INV", True, 3, 8, 8)
    for channel in range(8):
        if mask >> channel & 1:
            assert result.codes[channel] == macro.expected_code(channel)
        else:
            assert not result.converted[channel]


@cocotb.test()
async def abort(dut):
    """ABORT during the settle wait ends the operation, lowers enable and opens the switches."""
    tb, macro, regs = await _testbench(dut)
    request = tb.driver.request("INV", array=0, rows=4, cols=4, inputs=[1, 2, 3, 4], signed=False,
                                settle_cycles=1_000_000)
    await tb.driver.write_dac(request.inputs)
    await tb.driver.configure(request)
    await tb.driver.start()
    await tb.idle(2000)
    assert (await tb.driver.status()).busy
    assert int(dut.analog__enable.value) == 1
    await tb.driver.abort()
    status = await tb.driver.wait_done(request)
    assert status.aborted
    assert not status.busy
    assert int(dut.analog__enable.value) == 0
    assert int(dut.sw__conn.value) == 0
    assert int(dut.sw__row_en.value) == 0
    kinds = [event[0] for event in macro.events]
    assert kinds.count("disable") == 1
    assert "sample" not in kinds


@cocotb.test()
@cocotb.parametrize(fault=list(Fault))
async def watchdog(dut, fault):
    """A missing ready or a hung ADC ends in a timeout error bit after WATCHDOG_CYCLES."""
    faults = FaultInjection(**{fault.value: True})
    tb, macro, regs = await _testbench(dut, faults=faults)
    request = tb.driver.request("MVM", array=0, rows=3, cols=3, inputs=[1, 2, 3], signed=False,
                                settle_cycles=20, watchdog_cycles=250)
    expected = SettleTimeoutError if fault is Fault.READY_NEVER else ConversionTimeoutError
    try:
        await tb.driver.run(request)
    except expected as error:
        assert error.watchdog_cycles == 250
    else:
        raise AssertionError(f"no {expected.__name__} raised")
    timeline = sequencer_timeline(3, tb.params.bias_ready_cycles, 20, tb.params.adc_latency_cycles, [True] * 3,
                                  250, ready_never=faults.ready_never, adc_hang=faults.adc_hang)
    assert await tb.bus.read(regs["OP_CYCLES"].offset) == timeline["op_cycles"]
    assert int(dut.analog__enable.value) == 0


@cocotb.test()
async def adc_clip(dut):
    """Over-range conversions set ADC_CLIP and CLIP_COUNT, and the driver names the channels."""
    tb, _, regs = await _testbench(dut, overrange=frozenset({0, 2}))
    request = tb.driver.request("MVM_T", array=1, rows=2, cols=4, inputs=[5, -5], signed=False,
                                settle_cycles=10)
    try:
        await tb.driver.run(request)
    except AdcClipError as error:
        assert error.channels == [0, 2]
        assert error.result.clip_count == 2
    else:
        raise AssertionError("no AdcClipError raised")
    assert ErrorBit.ADC_CLIP in (await tb.driver.status()).errors
