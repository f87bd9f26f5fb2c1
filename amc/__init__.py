"""Co-simulation of a reconfigurable RRAM analog matrix computing (AMC) macro.

Subpackages: `amc.model` (behavioral model of the analog macro), `amc.rtl`
(Amaranth controller and Verilog generation), `amc.tb` (analog bridge, host
driver, cocotb testbenches) and `amc.commands` (the ``amc`` command line).
"""

__version__ = "0.1.0"
