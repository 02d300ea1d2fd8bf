"""bnapp: what a BatchNormalization input layer learns from hemodialysis data."""

# part of every cache key: bump it when a change alters what a cached result would hold
__version__ = "0.3.0"
