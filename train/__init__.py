"""Second-order (K-FAC) training whose factor inversions run on the modeled AMC macro.

Modules: `data` (digits, EMNIST Letters), `models` (two-layer CNN), `kfac`
(the optimizer), `inverse_backends` (exact, analog model, co-simulation
samples), `experiment` (training protocol), `report` (CSV and plots) and
`cost` (hardware cost estimate). ``amc train`` runs the comparison.
"""
