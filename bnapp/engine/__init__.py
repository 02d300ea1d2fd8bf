"""Engine: the network family, its numba trainer, protocols and grid, fold results, the torch
reference and the Keras import. Takes arrays, knows no data file, imports no other bnapp package.
"""
