"""Jobs: the job manager (manager), the cache-through computations it runs (cached), where their
work runs (processes: worker processes or a Dask cluster), the content-addressed disk cache
(cache) and what the pages compute, prepared ahead of their first visit (page_analyses).
Imports what lies below (report, analyses, engine, intake); never ui or cli.
"""
