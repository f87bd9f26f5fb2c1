"""Controller register file and sequencer in the Amaranth simulator, with a fake analog macro."""

from __future__ import annotations

import pytest

from amc.rtl.controller import AmcController
from amc.rtl.params import ControllerParams
from amc.rtl.regmap import ErrorBit, InvalidReason, RegisterMap
from amc.tb.amaranth_axil import AmaranthAxiLiteBus
from amc.tb.amaranth_backend import run_amaranth
from amc.tb.bridge_core import FaultInjection
from amc.tb.controller_model import sequencer_timeline
from amc.tb.errors import (
    AbortedError,
    AdcClipError,
    BusError,
    ConversionTimeoutError,
    InvalidConfigError,
    SettleTimeoutError,
)
from amc.tb.fake_macro import FakeMacro

from .sim_helpers import simulate

PARAMS = ControllerParams()
REGS = RegisterMap(PARAMS)


def _run(main, faults=None, macro=None):
    macro = macro if macro is not None else FakeMacro(PARAMS.macro)
    return run_amaranth(PARAMS, macro, main, faults=faults), macro


def test_identification_registers():
    async def main(driver):
        return {reg.name: await driver.bus.read(reg.offset) for reg in REGS.registers}

    run, _ = _run(main)
    values = run.result
    for name in ("ID", "VERSION", "ROWS", "COLS", "ARRAYS", "CONVERTERS", "CLOCK_PERIOD_PS", "MODES",
                 "COUNTER_WIDTH", "ROWS_ACTIVE", "COLS_ACTIVE", "SETTLE_CYCLES", "WATCHDOG_CYCLES"):
        assert values[name] == REGS[name].reset, name
    assert values["CTRL"] == 0
    assert values["STATUS"] == 0
    assert values["OUT_MASK0"] == (1 << min(32, PARAMS.lines)) - 1


def test_registers_read_back_written_values():
    # MODE gets bits outside its fields too; they must read back as zero.
    writes = {"MODE": 0xFFFF_F102, "ARRAY": 0xAB, "ROWS_ACTIVE": 0x1234, "COLS_ACTIVE": 7,
              "SETTLE_CYCLES": 0xFF_FFFF, "WATCHDOG_CYCLES": 0x12_3456, "OUT_MASK0": 0xDEAD_BEEF}

    async def main(driver):
        for name, value in writes.items():
            await driver.bus.write(REGS[name].offset, value)
        return {name: await driver.bus.read(REGS[name].offset) for name in writes}

    run, _ = _run(main)
    assert run.result["MODE"] == 0x102
    assert run.result["ARRAY"] == 0xAB
    assert run.result["ROWS_ACTIVE"] == 0x1234
    assert run.result["SETTLE_CYCLES"] == 0xFF_FFFF
    assert run.result["WATCHDOG_CYCLES"] == 0x12_3456
    assert run.result["OUT_MASK0"] == 0xDEAD_BEEF & ((1 << PARAMS.lines) - 1)


def test_dac_buffer_reads_back_sign_extended():
    async def main(driver):
        await driver.write_dac([-128, 127, -1, 0, 5])
        return [await driver.bus.read(REGS.dac.address(i)) for i in range(5)]

    run, _ = _run(main)
    assert run.result == [0xFFFF_FF80, 0x7F, 0xFFFF_FFFF, 0, 5]


def test_partial_strobe_changes_one_byte():
    async def main(driver):
        await driver.bus.write(REGS["SETTLE_CYCLES"].offset, 0x11_2233)
        await driver.bus.write(REGS["SETTLE_CYCLES"].offset, 0xAA_BBCC, strobe=0b0010)
        return await driver.bus.read(REGS["SETTLE_CYCLES"].offset)

    run, _ = _run(main)
    assert run.result == 0x11_BB33


@pytest.mark.parametrize("operation, address", [
    ("read", 0x3FC), ("write", 0x3FC), ("read", 0xFFC), ("write", REGS["ID"].offset),
    ("write", REGS["OP_CYCLES"].offset), ("write", REGS.adc.address(0)),
    ("read", REGS.adc.address(PARAMS.lines - 1) + 4),
])
def test_bad_address_answers_slverr(operation, address):
    async def main(driver):
        with pytest.raises(BusError) as caught:
            if operation == "read":
                await driver.bus.read(address)
            else:
                await driver.bus.write(address, 0x1234)
        status = await driver.status()
        await driver.clear_status()
        cleared = await driver.status()
        return caught.value, status, cleared

    run, _ = _run(main)
    error, status, cleared = run.result
    assert error.address == address
    assert error.resp == 0b10
    assert ErrorBit.BUS_ERROR in status.errors
    assert ErrorBit.BUS_ERROR not in cleared.errors


@pytest.mark.parametrize("inputs, settle, mask, mode", [
    (3, 20, None, "MVM"),
    (1, 1, None, "INV"),
    (8, 100, 0b10100101, "INV"),
    (5, 7, 0b1, "MVM_T"),
])
def test_sequencer_timing_matches_timeline(inputs, settle, mask, mode):
    rows, cols = (inputs, inputs) if mode == "INV" else ((inputs, 4) if mode == "MVM_T" else (4, inputs))

    async def main(driver):
        request = driver.request(mode, array=2, rows=rows, cols=cols, inputs=list(range(inputs)),
                                 signed=False, settle_cycles=settle, out_mask=mask)
        return await driver.run(request)

    run, macro = _run(main)
    result = run.result
    outputs = result.request.mode.output_count(rows, cols)
    mask_bits = mask if mask is not None else (1 << outputs) - 1
    timeline = sequencer_timeline(inputs, PARAMS.bias_ready_cycles, settle, PARAMS.adc_latency_cycles,
                                  [bool(mask_bits >> c & 1) for c in range(outputs)], PARAMS.default_watchdog_cycles)
    period = PARAMS.clock_period_ps
    samples = [(event[1] // period, event[2]) for event in macro.events if event[0] == "sample"]
    expected = [(cycle - timeline["enable"], channel) for channel, cycle in timeline["samples"]]
    assert samples == expected
    disable = [event[1] for event in macro.events if event[0] == "disable"]
    assert disable == [(timeline["disable"] - timeline["enable"]) * period]
    assert result.op_cycles == timeline["op_cycles"]
    assert [event[1] for event in macro.events if event[0] == "dac"] == list(range(inputs))
    for channel in range(outputs):
        converted = bool(mask_bits >> channel & 1)
        assert result.converted[channel] == converted
        if converted:
            assert result.codes[channel] == macro.expected_code(channel)


@pytest.mark.parametrize("reason, changes", [
    (InvalidReason.UNKNOWN_MODE, {"MODE": 5}),
    (InvalidReason.ARRAY_OUT_OF_RANGE, {"ARRAY": PARAMS.n_arrays}),
    (InvalidReason.NOT_SQUARE, {"COLS_ACTIVE": 3}),
    (InvalidReason.ZERO_SETTLE, {"SETTLE_CYCLES": 0}),
])
def test_invalid_config_does_not_start(reason, changes):
    async def main(driver):
        request = driver.request("INV", array=0, rows=4, cols=4, inputs=[1, 2, 3, 4], signed=False,
                                 settle_cycles=10)
        await driver.write_dac(request.inputs)
        await driver.configure(request)
        for name, value in changes.items():
            await driver.bus.write(REGS[name].offset, value)
        await driver.start()
        status = await driver.wait_done(request)
        code = await driver.bus.read(REGS["INVALID_REASON"].offset)
        count = await driver.bus.read(REGS["OP_COUNT"].offset)
        return status, code, count

    run, macro = _run(main)
    status, code, count = run.result
    assert ErrorBit.INVALID_CONFIG in status.errors
    assert not status.done
    assert code == reason
    assert count == 0
    assert not [event for event in macro.events if event[0] == "enable"]


def test_invalid_config_raises_with_reason():
    async def main(driver):
        request = driver.request("INV", array=0, rows=4, cols=4, inputs=[0] * 4, signed=False,
                                 settle_cycles=10, out_mask=0)
        with pytest.raises(InvalidConfigError) as caught:
            await driver.run(request)
        return caught.value

    run, _ = _run(main)
    assert run.result.reason is InvalidReason.EMPTY_OUTPUT_MASK
    assert "EMPTY_OUTPUT_MASK" in str(run.result)


def test_writes_while_busy_are_rejected():
    async def main(driver):
        request = driver.request("INV", array=0, rows=2, cols=2, inputs=[1, 1], signed=False,
                                 settle_cycles=5000)
        await driver.write_dac(request.inputs)
        await driver.configure(request)
        await driver.start()
        errors = []
        for address, value in ((REGS["MODE"].offset, 0), (REGS.dac.address(0), 3), (REGS["CTRL"].offset, 1)):
            try:
                await driver.bus.write(address, value)
            except BusError as error:
                errors.append(error.address)
        mode = await driver.bus.read(REGS["MODE"].offset)
        await driver.wait_done(request)
        return errors, mode

    run, _ = _run(main)
    errors, mode = run.result
    assert errors == [REGS["MODE"].offset, REGS.dac.address(0), REGS["CTRL"].offset]
    assert mode == 2


def test_abort_stops_operation_and_opens_switches():
    async def main(driver):
        request = driver.request("INV", array=1, rows=4, cols=4, inputs=[1, 2, 3, 4], signed=True,
                                 settle_cycles=100_000)
        await driver.write_dac(request.inputs)
        await driver.configure(request)
        await driver.start()
        await driver.bus.read(REGS["STATUS"].offset)
        for _ in range(20):
            await driver.bus.read(REGS["ID"].offset)
        busy = (await driver.status()).busy
        await driver.abort()
        status = await driver.wait_done(request)
        return busy, status

    run, macro = _run(main)
    busy, status = run.result
    assert busy
    assert status.aborted
    assert status.done
    assert not status.busy
    kinds = [event[0] for event in macro.events]
    assert kinds.count("enable") == 1
    assert kinds.count("disable") == 1
    assert "sample" not in kinds


def test_abort_raises_aborted_error():
    async def main(driver):
        request = driver.request("MVM", array=0, rows=2, cols=2, inputs=[1, 1], signed=False,
                                 settle_cycles=100_000)

        async def run_and_abort():
            await driver.write_dac(request.inputs)
            await driver.configure(request)
            await driver.start()
            await driver.abort()
            status = await driver.wait_done(request)
            if status.aborted:
                raise AbortedError(str(status))

        with pytest.raises(AbortedError):
            await run_and_abort()
        return True

    run, _ = _run(main)
    assert run.result


@pytest.mark.parametrize("fault, error", [
    (FaultInjection(ready_never=True), SettleTimeoutError),
    (FaultInjection(adc_hang=True), ConversionTimeoutError),
])
def test_watchdog_ends_wait(fault, error):
    watchdog = 300

    async def main(driver):
        request = driver.request("INV", array=0, rows=3, cols=3, inputs=[1, 2, 3], signed=False,
                                 settle_cycles=10, watchdog_cycles=watchdog)
        with pytest.raises(error) as caught:
            await driver.run(request)
        return caught.value, await driver.bus.read(REGS["OP_CYCLES"].offset)

    run, macro = _run(main, faults=fault)
    caught, op_cycles = run.result
    assert caught.watchdog_cycles == watchdog
    timeline = sequencer_timeline(3, PARAMS.bias_ready_cycles, 10, PARAMS.adc_latency_cycles, [True] * 3,
                                  watchdog, ready_never=fault.ready_never, adc_hang=fault.adc_hang)
    assert op_cycles == timeline["op_cycles"]
    assert [event[0] for event in macro.events].count("disable") == 1


def test_adc_overrange_sets_clip_flags():
    macro = FakeMacro(PARAMS.macro, overrange_channels=frozenset({1, 3}))

    async def main(driver):
        request = driver.request("MVM", array=0, rows=4, cols=2, inputs=[1, 2], signed=False, settle_cycles=5)
        with pytest.raises(AdcClipError) as caught:
            await driver.run(request)
        return caught.value

    run, _ = _run(main, macro=macro)
    error = run.result
    assert error.channels == [1, 3]
    assert error.result.clip_count == 2
    assert ErrorBit.ADC_CLIP in error.result.status.errors
    assert "channel(s) [1, 3]" in str(error)


@pytest.mark.parametrize("order", ["aw_first", "w_first"])
def test_write_channels_in_either_order(order):
    dut = AmcController(PARAMS)
    seen = {}

    async def bench(ctx):
        bus = dut.axil
        for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
            ctx.set(getattr(bus, name), 0)
        await ctx.tick().repeat(2)
        first, second = (("aw", "w") if order == "aw_first" else ("w", "aw"))
        ctx.set(bus.awaddr, REGS["SETTLE_CYCLES"].offset)
        ctx.set(bus.wdata, 4321)
        ctx.set(bus.wstrb, 0xF)
        for channel in (first, second):
            ctx.set(getattr(bus, f"{channel}valid"), 1)
            await ctx.tick().until(getattr(bus, f"{channel}ready"))
            ctx.set(getattr(bus, f"{channel}valid"), 0)
            await ctx.tick().repeat(3)
        ctx.set(bus.bready, 1)
        (bresp,) = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
        seen["bresp"] = bresp
        ctx.set(bus.bready, 0)
        manager = AmaranthAxiLiteBus(ctx, bus, dut.irq, PARAMS.clock_period_ps)
        seen["value"] = await manager.read(REGS["SETTLE_CYCLES"].offset)

    simulate(dut, bench)
    assert seen["bresp"] == 0
    assert seen["value"] == 4321
