"""Behavioral model of the analog matrix computing macro (numpy/scipy).

Modules, from the devices up:

- `config`: every analog parameter (`MacroConfig`).
- `switch_matrix`: connection flags and the mode table.
- `mapping`: matrix to conductances; `encoding`: vectors to DAC codes and ADC codes back.
- `converters`: DAC and ADC quantization; `devices`: stuck cells, programming error, read noise.
- `circuits`: the linear circuit of a switch state; `statespace`: its steady state,
  poles, settling and stability; `trajectory`: responses with the rail clamp.
- `rram_cell`: the 1T1R cell's response to SET and RESET pulses.
- `macro`: `AnalogMacro`, the event-level model every backend drives.
- `write_verify`: the write-verify algorithm of the controller's engine;
  `programming`: write-verify on the model alone, with statistics;
  `programming_report`: their PNG report.
- `solve`: `solve`, `multiply`, `solve_many` and `ProgrammedSolver` without the controller.
"""

from .config import MacroConfig
from .errors import (
    ArrayCapacityError,
    CircuitBuildError,
    InvalidOperandError,
    MacroUsageError,
    ModelError,
    SingularMatrixError,
    UnstableCircuitError,
)
from .macro import AdcSample, AnalogMacro, OperationRecord
from .solve import AnalogResult, ProgrammedSolver, multiply, solve, solve_many

__all__ = [
    "MacroConfig",
    "AnalogMacro",
    "AdcSample",
    "OperationRecord",
    "AnalogResult",
    "ProgrammedSolver",
    "solve",
    "solve_many",
    "multiply",
    "ModelError",
    "InvalidOperandError",
    "ArrayCapacityError",
    "SingularMatrixError",
    "UnstableCircuitError",
    "CircuitBuildError",
    "MacroUsageError",
]
