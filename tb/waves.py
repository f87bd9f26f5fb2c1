"""GTKWave save files for the controller's waveforms.

Each cocotb test writes its own FST dump; `write_gtkw` writes a save file
beside it that groups the bus, the sequencer state, the switch word, the
analog-side ports and the write-verify engine with its pulse port. The state
registers are named through translate filters generated from `SequencerState`
and `WvState`, so ``gtkwave dump.fst dump.gtkw`` opens a readable view.
"""

from __future__ import annotations

import math
from pathlib import Path

from amaranth.hdl import Shape
from vcd.gtkw import GTKWSave

from ..rtl.controller import controller_signature
from ..rtl.params import ControllerParams
from ..rtl.sequencer import SequencerState
from ..rtl.verilog import TOP_NAME, state_filter_text
from ..rtl.write_verify import WvState

__all__ = ["GROUPS", "write_gtkw", "scope_for"]

GROUPS = (
    ("Sequencer", ("seq_state", "irq")),
    ("AXI4-Lite bus", ("axil",)),
    ("Switch word", ("sw",)),
    ("DAC", ("dac",)),
    ("Analog", ("analog",)),
    ("ADC", ("adc",)),
    ("Write-verify", ("wv_state", "pulse")),
)
"""Groups of the save file: title and the controller ports (or port prefixes) in it."""


def scope_for(simulator: str) -> str:
    """Return the hierarchical prefix of the controller's ports in `simulator`'s FST dump.

    Icarus and Verilator 5.48 (with ``--trace-fst``) both put them in a scope
    named after the top module.
    """
    return TOP_NAME


def _ports(params: ControllerParams) -> list[tuple[str, int]]:
    """Return (Verilog port name, width) of every controller port, in signature order."""
    ports = []
    for path, member in controller_signature(params).members.flatten():
        if member.is_port:
            name = "__".join(str(part) for part in path)
            ports.append((name, Shape.cast(member.shape).width))
    return ports


WAVE_PIXELS = 1000
"""Width of the wave pane, in pixels, that the initial zoom fills with the whole run."""

GTKWAVE_ZOOM_FACTOR = 152
"""Measured ratio between 2^-zoom and the picoseconds per pixel GTKWave 3.3.118 shows."""


def write_gtkw(gtkw_path: Path, dump_path: Path, params: ControllerParams, simulator: str,
               duration_ps: int | None = None) -> Path:
    """Write a GTKWave save file for `dump_path`; return its path.

    The translate filters for the state registers are written beside it
    (``seq_state.filter``, ``wv_state.filter``). With `duration_ps`, the view
    opens zoomed to show the whole run.
    """
    gtkw_path = Path(gtkw_path)
    gtkw_path.parent.mkdir(parents=True, exist_ok=True)
    filters = {}
    for port, states in (("seq_state", SequencerState), ("wv_state", WvState)):
        filters[port] = gtkw_path.parent / f"{port}.filter"
        filters[port].write_text(state_filter_text(states))
    scope = scope_for(simulator)
    ports = _ports(params)

    with open(gtkw_path, "w") as handle:
        save = GTKWSave(handle)
        save.comment(f"AMC controller waveform view ({simulator})")
        save.dumpfile(str(Path(dump_path).resolve()))
        save.size(1500, 950)
        save.treeopen(scope.split(".")[0])
        save.signals_width(260)
        if duration_ps:
            # NOTE: zoom z showed 2^-z / 152 ps per pixel on these 1 ps dumps in
            # GTKWave 3.3.118 (measured on screenshots at two zooms), not the
            # 2^-z of its sources; the factor may differ in other versions.
            save.zoom_markers(-math.log2(GTKWAVE_ZOOM_FACTOR * max(duration_ps, WAVE_PIXELS) / WAVE_PIXELS))
        for title, prefixes in GROUPS:
            members = [(name, width) for name, width in ports
                       if any(name == prefix or name.startswith(prefix + "__") for prefix in prefixes)]
            with save.group(title, closed=False):
                for name, width in members:
                    reference = f"{scope}.{name}" if width == 1 else f"{scope}.{name}[{width - 1}:0]"
                    if name in filters:
                        save.trace(reference, alias=name, datafmt="hex",
                                   translate_filter_file=str(filters[name].resolve()))
                    elif name in ("dac__code", "adc__code"):
                        save.trace(reference, datafmt="signed")
                    else:
                        save.trace(reference, datafmt="hex")
    return gtkw_path
