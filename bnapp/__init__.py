"""bnapp: what a BatchNormalization input layer learns from hemodialysis data."""

__version__ = "0.1.0"
