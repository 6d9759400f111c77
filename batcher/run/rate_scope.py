"""`rate_scope`: whose caps a run's send slots count against in the rate store.

Shared by submit (`batcher.run.submission`) and collect (`batcher.results`): every process of
one account, on any host, must reserve slots under the same scope to share the API's caps
(docs/operating.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batcher.wire.credentials import Credentials


def rate_scope(credentials: Credentials) -> str:
    """What scopes the rate store's keys: the account's SecretId (hashed by the store). A CVM
    role's temporary SecretId changes at every refresh and differs between hosts, so its
    runs are scoped by the role's name instead: the hosts that share a role share its cap."""
    if credentials.source.startswith("CVM role "):
        return credentials.source
    return credentials.secret_id
