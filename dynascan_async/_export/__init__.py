"""The machinery behind :mod:`dynascan_async.export`: one package for the CLI and Dask tasks.

* ``_formats``: part writers, one per format (parquet, jsonl, ddb-json). Synchronous,
  so a Dask task or a thread can use them as well as the export loop.
* ``_layout``: the on-disk protocol of an export folder: part names, the state file,
  the manifest, the clean-up of what a crash left behind.
* ``_run``: the export loop (scan, write, commit), the one place where "exactly once"
  is kept.
* ``_cli``: the ``dynascan export`` subcommand, a thin shell over ``_run``.
"""

__all__: list[str] = []
