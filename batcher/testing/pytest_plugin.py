"""The `batcher_emulator` pytest fixture: an `Emulator` for the test, its environment set.

Loaded by pytest through the `pytest11` entry point of the `batcher` distribution, so a user's
test only names the fixture::

    def test_my_flow(batcher_emulator, tmp_path):
        result = batcher.submit(tmp_path / "jobs.yaml")   # credentials and endpoint from env
        assert batcher_emulator.created("vod") == 3

The environment (`Emulator.env`: credentials, `BATCHER_ENDPOINT`, a private rate store) is set
with pytest's `monkeypatch`, so it is gone after the test. Importing this module imports nothing
heavy: the emulator starts only when a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batcher.testing import Emulator

__all__ = ["batcher_emulator"]


@pytest.fixture
def batcher_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A running emulator (default settings) for this test, with its environment set."""
    with Emulator() as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        yield emulator
