"""The face: the `batcher` command line, one module per command, and what a user sees.

Owns argument parsing (`main`; the options several commands share, `options`, and what they
name, `resolve`), the commands (`submit`, `collect`, `plan`, `status`, `emulator`, each with its
helper modules `<command>_*.py`), progress, summaries, logs and metrics. A command translates its
options into the settings of the layer that runs it (`batcher.run.submission` for submit,
`batcher.results` for collect) and reports the result; it never imports another command's
modules (shared things live in `options`, `resolve`, `report`, `logs`, `progress`, `metrics`).
A command imports the layers it needs when it runs, so starting the CLI stays fast. May import
every layer below it and the emulator.
"""
