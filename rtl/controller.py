"""Top level of the AMC macro controller.

Connects the AXI4-Lite register file to the DAC/ADC sequencer and exposes the
analog-side ports that the analog macro (or its model, through the analog
bridge) answers.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .interfaces import AdcSignature, AnalogSignature, AXI4LiteSignature, DacSignature, PulseSignature, SwitchSignature
from .params import ControllerParams
from .register_file import RegisterFile
from .sequencer import Sequencer, SequencerState
from .write_verify import WvState

__all__ = ["AmcController", "controller_signature"]


def controller_signature(params: ControllerParams) -> wiring.Signature:
    """Return the port signature of `AmcController` for `params`."""
    p = params
    return wiring.Signature({
        "axil": In(AXI4LiteSignature(addr_width=p.addr_width, data_width=p.DATA_WIDTH)),
        "sw": Out(SwitchSignature(p)),
        "dac": Out(DacSignature(p)),
        "analog": Out(AnalogSignature()),
        "adc": Out(AdcSignature(p)),
        "pulse": Out(PulseSignature(p)),
        "irq": Out(1),
        "seq_state": Out(SequencerState),
        "wv_state": Out(WvState),
    })


class AmcController(wiring.Component):
    """Digital controller of one reconfigurable AMC macro.

    Parameters
    ----------
    params : ControllerParams
        Sizes, widths and clock; see `amc.rtl.params`.

    Attributes
    ----------
    axil : In(AXI4LiteSignature)
        Host register bus (Verilog ports ``axil__*``).
    sw : Out(SwitchSignature)
        Switch-control word (``sw__conn``, ``sw__array``, ``sw__row_en``, ``sw__col_en``).
    dac : Out(DacSignature)
        DAC latch write port.
    analog : Out(AnalogSignature)
        Analog enable and bias-ready.
    adc : Out(AdcSignature)
        ADC handshake.
    irq : Out(1)
        Interrupt: an operation finished or an error bit is set.
    pulse : Out(PulseSignature)
        Programming pulse to the cell the switch word selects.
    seq_state : Out(SequencerState)
        Sequencer state, for waveforms and tests.
    wv_state : Out(WvState)
        Write-verify engine state, for waveforms and tests.
    """

    def __init__(self, params: ControllerParams | None = None):
        self._params = params if params is not None else ControllerParams()
        super().__init__(controller_signature(self._params))

    @property
    def params(self) -> ControllerParams:
        return self._params

    def elaborate(self, platform):
        m = Module()
        p = self._params

        m.submodules.regs = regs = RegisterFile(p)
        m.submodules.seq = seq = Sequencer(p)

        wiring.connect(m, wiring.flipped(self.axil), regs.axil)
        wiring.connect(m, regs.cmd, seq.cmd)
        wiring.connect(m, seq.rsp, regs.rsp)
        wiring.connect(m, regs.dac_rd, seq.dac_rd)
        wiring.connect(m, regs.adc_wr, seq.adc_wr)
        wiring.connect(m, seq.sw, wiring.flipped(self.sw))
        wiring.connect(m, seq.dac, wiring.flipped(self.dac))
        wiring.connect(m, seq.analog, wiring.flipped(self.analog))
        wiring.connect(m, seq.adc, wiring.flipped(self.adc))
        wiring.connect(m, seq.pulse, wiring.flipped(self.pulse))
        m.d.comb += [
            seq.abort.eq(regs.abort),
            regs.seq_busy.eq(seq.busy),
            regs.converted.eq(seq.converted),
            self.irq.eq(regs.irq),
            self.seq_state.eq(seq.state),
            self.wv_state.eq(regs.wv_state),
        ]
        return m
