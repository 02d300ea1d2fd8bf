"""Report: charts, the pages' tables and texts, the export files and the HTML report of a run.
Imports analyses, engine and intake; never jobs, ui or cli.
"""
