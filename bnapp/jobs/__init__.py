"""Jobs: the background job runner (runner), where its work runs (backend: worker processes or a
Dask cluster) and the content-addressed disk cache (cache).
Imports what lies below (report, analyses, engine, intake); never ui or cli.
"""
