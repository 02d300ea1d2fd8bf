"""Jobs: the background job runner, the content-addressed disk cache and the Dask backend.
Imports what lies below (report, analyses, engine, intake); never ui or cli.
"""
