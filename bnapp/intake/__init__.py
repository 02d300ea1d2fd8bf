"""Intake: a user's file becomes a validated Dataset; units, clinical formulas, the simulator.

Imports nothing from the rest of bnapp: every other package may import it.
"""
