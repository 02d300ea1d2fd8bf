"""Analyses of trained runs as tidy DataFrames: BN stages and parameters, ablation, association,
baselines, prediction and the study's reproduction. They import engine and intake, nothing above.
"""
