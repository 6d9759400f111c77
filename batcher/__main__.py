"""`python -m batcher`: the same entry point as the `batcher` console script."""

from batcher.cli import main

raise SystemExit(main())
