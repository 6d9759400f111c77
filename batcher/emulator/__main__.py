"""`python -m batcher.emulator`: the emulator command without the rest of the CLI."""

from batcher.emulator.serve import main

raise SystemExit(main())
