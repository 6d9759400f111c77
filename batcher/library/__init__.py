"""The Python API's calls: `plan`, `submit`, `collect` (and their `_async` twins).

A face, like `batcher.cli`: each call turns keyword arguments (the CLI's options in Python
spelling) into the same settings objects the CLI builds and runs the same sequence below it
(`batcher.run.submission`, `batcher.results.collector`), so a script and a cron line write the
same ledgers and files. It prints nothing unless asked (`progress=True`) and logs to the
`batcher` logger; errors are `batcher.BatcherError`s. `batcher/__init__.py` re-exports the public
names; docs/python-api.md is the guide.

Modules: `plan`, `submit`, `collect` (one call each), `results` (what they return), `sync`
(running a coroutine from plain code, even inside a running event loop).
"""
