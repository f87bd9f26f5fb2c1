"""Port signatures and data layouts shared by the controller blocks.

Signatures are written from the initiator's side (the bus manager, the
controller driving the analog macro); a block that receives them uses ``In``.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..model.switch_matrix import CONN_WIDTH, MODE_CODE_WIDTH
from .params import ControllerParams

ARRAY_FIELD_WIDTH = 8
"""Width of the ARRAY register field, in bits."""

COUNT_FIELD_WIDTH = 16
"""Width of the ROWS_ACTIVE and COLS_ACTIVE register fields, in bits."""

PULSE_WIDTH_BITS = 16
"""Width of the pulse-width field (clock cycles), in bits."""

__all__ = [
    "ARRAY_FIELD_WIDTH",
    "COUNT_FIELD_WIDTH",
    "PULSE_WIDTH_BITS",
    "PulseSignature",
    "AXI4LiteSignature",
    "SwitchSignature",
    "DacSignature",
    "AnalogSignature",
    "AdcSignature",
    "operation_layout",
    "result_layout",
    "AxiResp",
]


class AxiResp:
    """AXI response codes (AMBA AXI4 specification, RRESP/BRESP)."""

    OKAY = 0b00
    SLVERR = 0b10


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite bus, seen from the manager.

    Parameters
    ----------
    addr_width : int
        Byte address width in bits.
    data_width : int
        Data width in bits, 32 or 64.
    """

    def __init__(self, *, addr_width: int, data_width: int = 32):
        if data_width not in (32, 64):
            raise ValueError(f"AXI4-Lite data width must be 32 or 64 bits, not {data_width}")
        if not isinstance(addr_width, int) or addr_width < 2:
            raise ValueError(f"AXI4-Lite address width must be an integer of at least 2 bits, not {addr_width!r}")
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width),
            "awprot": Out(3),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
            "araddr": Out(addr_width),
            "arprot": Out(3),
            "arvalid": Out(1),
            "arready": In(1),
            "rdata": In(data_width),
            "rresp": In(2),
            "rvalid": In(1),
            "rready": Out(1),
        })


class SwitchSignature(wiring.Signature):
    """Switch-control word: connection flags, array select and line enables."""

    def __init__(self, params: ControllerParams):
        super().__init__({
            "conn": Out(CONN_WIDTH),
            "array": Out(params.n_arrays),
            "row_en": Out(params.rows),
            "col_en": Out(params.cols),
        })


class DacSignature(wiring.Signature):
    """DAC latch write port: ``chan`` and ``code`` are stable one cycle before ``load`` rises."""

    def __init__(self, params: ControllerParams):
        super().__init__({
            "chan": Out(params.channel_width),
            "code": Out(params.dac_bits),
            "load": Out(1),
        })


class AnalogSignature(wiring.Signature):
    """Analog block enable and its bias-ready answer."""

    def __init__(self):
        super().__init__({
            "enable": Out(1),
            "ready": In(1),
        })


class AdcSignature(wiring.Signature):
    """ADC handshake: ``chan`` is stable one cycle before ``start`` rises; the
    converter raises ``busy`` at the start edge, then lowers it and raises
    ``valid`` with ``code`` and ``overrange``; ``valid`` stays high until the next start."""

    def __init__(self, params: ControllerParams):
        super().__init__({
            "start": Out(1),
            "chan": Out(params.channel_width),
            "busy": In(1),
            "valid": In(1),
            "code": In(params.adc_bits),
            "overrange": In(1),
        })


class PulseSignature(wiring.Signature):
    """Programming pulse: ``polarity`` (1 SET, 0 RESET), ``amplitude`` and ``width`` are stable
    one cycle before ``active`` rises; ``active`` stays high for ``width`` cycles. The cell is the
    one selected by the switch word (PROGRAM mode)."""

    def __init__(self, params: ControllerParams):
        super().__init__({
            "active": Out(1),
            "polarity": Out(1),
            "amplitude": Out(params.amplitude_bits),
            "width": Out(PULSE_WIDTH_BITS),
        })


def operation_layout(params: ControllerParams) -> data.StructLayout:
    """Layout of one analog operation as the sequencer accepts it.

    The register file builds it from the control registers; a block scheduler
    can issue a sequence of them.
    """
    return data.StructLayout({
        "mode": unsigned(MODE_CODE_WIDTH),
        "signed": unsigned(1),
        # Array index and line counts keep the full register field width, so
        # an out-of-range value is rejected instead of wrapping.
        "array": unsigned(ARRAY_FIELD_WIDTH),
        "rows": unsigned(COUNT_FIELD_WIDTH),
        "cols": unsigned(COUNT_FIELD_WIDTH),
        "settle": unsigned(params.counter_width),
        "watchdog": unsigned(params.counter_width),
        "out_mask": unsigned(params.lines),
        # Single-cell modes (VERIFY, PROGRAM) only:
        "cell_row": unsigned(params.row_width),
        "cell_col": unsigned(params.col_width),
        "half": unsigned(1),
        "dac_code": unsigned(params.dac_bits),
        "polarity": unsigned(1),
        "amplitude": unsigned(params.amplitude_bits),
        "width": unsigned(PULSE_WIDTH_BITS),
    })


def result_layout(params: ControllerParams) -> data.StructLayout:
    """Layout of the completion record of one operation."""
    return data.StructLayout({
        "aborted": unsigned(1),
        "adc_clip": unsigned(1),
        "settle_timeout": unsigned(1),
        "conv_timeout": unsigned(1),
        "clip_count": unsigned(params.count_width),
        "cycles": unsigned(32),
        "code": unsigned(params.adc_bits),
        "overrange": unsigned(1),
    })
