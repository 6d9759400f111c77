"""The face: the `batcher` command line, one module per command, and what a user sees.

Owns argument parsing (`main`, `options`), the commands (`submit`, `plan`, `status`,
`emulator`), progress, summaries, logs and metrics. A command imports the layers it needs when it
runs, so starting the CLI stays fast. May import every layer below it and the emulator.
"""
