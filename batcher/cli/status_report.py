"""`batcher status`'s text: a `batcher.results.status.StatusReport` as a table per manifest,
the failures by error code, the generation states and the tasks not yet on disk."""

from __future__ import annotations

from batcher.cli.report import render_table
from batcher.results.status import STATE_NAMES, StatusReport


def render_status(report: StatusReport) -> str:
    title = report.manifest or report.ledger
    lines = [f"{title} (ledger {report.ledger})"]
    columns = [name for name in STATE_NAMES.values()
               if any(name in counts for counts in report.states.values())]
    if report.states:
        lines.extend(render_table(["service", *columns], report.states))
    else:
        lines.append("  no tasks")
    if report.failures:
        lines.append("failures by error code:")
        for group in report.failures:
            again = "sent again by the next submit" if group.retryable == group.count else (
                "needs --retry-failed" if group.retryable == 0 else
                f"{group.retryable} sent again by the next submit")
            lines.append(f"  {group.code}: {group.count} ({again}); e.g. {group.example}")
    if report.generation:
        lines.append("generation (from collect):")
        columns = sorted({name for counts in report.generation.values() for name in counts})
        lines.extend(render_table(["service", *columns], report.generation))
    if report.unsaved is not None and report.unsaved.count:
        unsaved = report.unsaved
        left = "" if unsaved.expires_in is None else (
            f", its URLs expire in {unsaved.expires_in / 3600:.1f} h")
        lines.append(f"not on disk yet: {unsaved.count} finished task(s), the oldest finished "
                     f"{unsaved.oldest_age / 60:.0f} min ago{left}: run collect")
    if report.torn_lines:
        lines.append(f"note: {report.torn_lines} torn or corrupt ledger line(s) were skipped")
    return "\n".join(lines)
