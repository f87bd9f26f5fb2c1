"""Command-line options shared by the subcommands: macro parameters and non-idealities."""

from __future__ import annotations

import argparse
import dataclasses

from ..model.config import (
    AdcParams,
    ArrayParams,
    ConfigError,
    DacParams,
    MacroConfig,
    NonIdealities,
    OpAmpParams,
    ProgrammingError,
    ReadNoise,
    StuckCells,
)
from ..rtl.params import ControllerParams

__all__ = ["add_macro_options", "params_from_args"]

_DEFAULT = MacroConfig()
_CONTROLLER = ControllerParams()


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use 0 or more")
    return value


def add_macro_options(parser: argparse.ArgumentParser, *, nonideal: bool = True) -> None:
    """Add the macro geometry, converter and (optionally) non-ideality options to `parser`."""
    group = parser.add_argument_group("macro parameters")
    a = _DEFAULT.array
    group.add_argument("--rows", type=int, default=a.rows, help=f"row lines per array (default {a.rows})")
    group.add_argument("--cols", type=int, default=a.cols, help=f"column lines per array (default {a.cols})")
    group.add_argument("--arrays", type=int, default=a.n_arrays, help=f"arrays in the macro (default {a.n_arrays})")
    group.add_argument("--levels", type=int, default=a.levels,
                       help=f"conductance levels per cell (default {a.levels})")
    group.add_argument("--g-min", type=float, default=a.g_min_S * 1e6, metavar="USIEMENS",
                       help=f"lowest cell conductance in microsiemens (default {a.g_min_S * 1e6:g})")
    group.add_argument("--g-max", type=float, default=a.g_max_S * 1e6, metavar="USIEMENS",
                       help=f"highest cell conductance in microsiemens (default {a.g_max_S * 1e6:g})")
    group.add_argument("--dac-bits", type=int, default=_DEFAULT.dac.bits,
                       help=f"DAC resolution in bits (default {_DEFAULT.dac.bits})")
    group.add_argument("--adc-bits", type=int, default=_DEFAULT.adc.bits,
                       help=f"ADC resolution in bits (default {_DEFAULT.adc.bits})")
    group.add_argument("--gbw", type=float, default=_DEFAULT.opamp.gbw_Hz / 1e6, metavar="MHZ",
                       help=f"op-amp gain-bandwidth product in MHz (default {_DEFAULT.opamp.gbw_Hz / 1e6:g})")
    group.add_argument("--a0", type=float, default=_DEFAULT.opamp.open_loop_gain,
                       help=f"op-amp open-loop gain (default {_DEFAULT.opamp.open_loop_gain:g})")
    group.add_argument("--clock-period-ps", type=int, default=_CONTROLLER.clock_period_ps,
                       help=f"controller clock period in picoseconds (default {_CONTROLLER.clock_period_ps})")
    if not nonideal:
        return
    group = parser.add_argument_group("non-idealities (each switchable, all drawn from --seed)")
    group.add_argument("--ideal", action="store_true",
                       help="switch every device non-ideality off, level quantization included")
    n = _DEFAULT.nonideal
    group.add_argument("--programming-sigma", type=float, default=n.programming.sigma_rel, metavar="FRACTION",
                       help=f"programming error, sigma as a fraction of the conductance window "
                            f"(default {n.programming.sigma_rel:g}; 0 switches it off)")
    group.add_argument("--read-noise", type=float, default=n.read_noise.sigma_rel, metavar="FRACTION",
                       help=f"read noise, sigma relative to each conductance (default {n.read_noise.sigma_rel:g}; "
                            "0 switches it off)")
    group.add_argument("--stuck-fraction", type=float, default=n.stuck.fraction, metavar="FRACTION",
                       help=f"probability that a cell is stuck (default {n.stuck.fraction:g}; 0 switches it off)")
    group.add_argument("--no-quantization", action="store_true",
                       help="program continuous conductances instead of the discrete levels")
    group.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of every random source (default 0)")


def params_from_args(args: argparse.Namespace) -> ControllerParams:
    """Build `ControllerParams` from parsed options; raise ConfigError with the offending value."""
    array = ArrayParams(rows=args.rows, cols=args.cols, n_arrays=args.arrays, levels=args.levels,
                        g_min_S=args.g_min * 1e-6, g_max_S=args.g_max * 1e-6)
    config = MacroConfig(
        array=array,
        opamp=dataclasses.replace(OpAmpParams(), gbw_Hz=args.gbw * 1e6, open_loop_gain=args.a0),
        dac=dataclasses.replace(DacParams(), bits=args.dac_bits),
        adc=dataclasses.replace(AdcParams(), bits=args.adc_bits),
    )
    if hasattr(args, "ideal"):
        if args.ideal:
            nonideal = NonIdealities.ideal()
        else:
            nonideal = NonIdealities(
                programming=ProgrammingError(enabled=args.programming_sigma > 0, sigma_rel=args.programming_sigma),
                read_noise=ReadNoise(enabled=args.read_noise > 0, sigma_rel=args.read_noise),
                stuck=StuckCells(enabled=args.stuck_fraction > 0, fraction=args.stuck_fraction),
                quantize_levels=not args.no_quantization,
            )
        config = config.replace(nonideal=nonideal, seed=args.seed)
    return ControllerParams(macro=config, clock_period_ps=args.clock_period_ps)


__all__ += ["ConfigError"]
