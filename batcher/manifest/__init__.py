"""Input: job manifests (YAML or CSV) read as a stream, expanded, validated and keyed.

Owns docs/manifests.md (manifests, task keys and SessionIds). It knows nothing of HTTP, ledgers or
rates: it turns files into `Task`s, or into a `ManifestError` naming file:line and the fix.
May import: `batcher.api` (request models, service registry) and `batcher.exceptions`.

The public surface is what `plan`, `submit` and `status` call::

    manifest = load_manifest(Path("jobs/example.yaml"))
    report = manifest.validate()          # ManifestError (exit 2) before anything is sent
    for task in manifest.tasks():         # a stream: a million rows are never held at once
        print(task.key, task.service, task.session_id)

    manifest.validate(on_key=tally)       # the same check, each task's TaskKey to a ledger
    manifest.tasks("vod", start=place)    # a lane resuming at a TaskKey's place
"""

from batcher.exceptions import ManifestError
from batcher.manifest.loader import Manifest, load_manifest
from batcher.manifest.task import Task, TaskKey, ValidationReport

__all__ = ["Manifest", "ManifestError", "Task", "TaskKey", "ValidationReport", "load_manifest"]
