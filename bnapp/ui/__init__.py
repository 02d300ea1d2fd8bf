"""Streamlit helpers: the only part of bnapp that imports streamlit."""
