"""What `submit` and `plan` print: the submit summary and the plan table, and `dumps`.

Each report is a plain data object first (so `--json` prints exactly what the text shows) and a
text rendering second: the submit summary renders `batcher.run.summary.JobSummary`, the plan
table `batcher.run.resume` plans; the status report (`batcher.results.status`) is rendered by
`status_report`, collect's summary by `collect_report`. Nothing here reads files or talks to the
network.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batcher.run.resume import ServicePlan
from batcher.run.summary import NOT_SENT, SUMMARY_COLUMNS, JobSummary


def render_summary(
    summaries: Iterable[JobSummary], exit_code: int, stop_detail: str, account_error: bool = False
) -> str:
    """The human summary printed at the end of `submit`. `account_error`: the run stopped on
    an error that fails every task of the account (`stop_detail` is "CODE: message")."""
    lines = []
    for summary in summaries:
        lines.append(f"{summary.manifest} (ledger {summary.ledger})")
        lines.extend(render_table(["service", *SUMMARY_COLUMNS], summary.services))
        hints = _hints(summary, account_error)
        lines.extend(f"  {hint}" for hint in hints)
    if account_error:
        lines.append(f"stopped: the API refused this account's requests: {stop_detail}")
        lines.append(f"to fix: {account_fix(stop_detail)}")
    elif stop_detail:
        lines.append(f"stopped: {stop_detail}")
    lines.append(f"exit code {exit_code}")
    return "\n".join(lines)


def render_summary_line(
    summaries: Iterable[JobSummary], exit_code: int, stop_detail: str, account_error: bool = False
) -> str:
    """The summary in one line, for the log file: counts per manifest, why it stopped, exit."""
    parts = []
    for summary in summaries:
        totals = {c: sum(s[c] for s in summary.services.values()) for c in SUMMARY_COLUMNS}
        counts = ", ".join(f"{count} {column}" for column, count in totals.items() if count)
        parts.append(f"{summary.manifest}: {counts or 'no tasks'}")
    if account_error:
        parts.append(f"stopped: {stop_detail}; to fix: {account_fix(stop_detail)}")
    elif stop_detail:
        parts.append(f"stopped: {stop_detail}")
    return f"run ended, exit code {exit_code}: " + "; ".join(parts)


_ACCOUNT_FIXES = {
    "AuthFailure.SecretIdNotFound": "the SecretId does not exist or is disabled: check "
    "TENCENTCLOUD_SECRET_ID (or secret_id in the credentials file) against the API keys in the "
    "console",
    "AuthFailure.InvalidSecretId": "the SecretId is not an API key: check TENCENTCLOUD_SECRET_ID "
    "(or secret_id in the credentials file)",
    "AuthFailure.SignatureFailure": "the signature did not verify: the SecretKey does not belong "
    "to the SecretId; check TENCENTCLOUD_SECRET_KEY (or secret_key in the credentials file)",
    "AuthFailure.TokenFailure": "the session token was refused or has expired: temporary "
    "credentials need their current token (TENCENTCLOUD_TOKEN); get new ones",
    "AuthFailure.MFAFailure": "the key's user must pass MFA: use an API key without MFA",
    "AuthFailure.UnauthorizedOperation": "this key's user may not create AIGC image tasks: grant "
    "it CreateAigcImageTask on the service in CAM (Cloud Access Management)",
    "UnauthorizedOperation": "this key's user may not create AIGC image tasks: grant it "
    "CreateAigcImageTask on the service in CAM (Cloud Access Management)",
    "FailedOperation.InvalidVodUser": "VOD is not activated on this account: activate Video on "
    "Demand in the console",
    "InvalidParameterValue.SubAppId": "the SubAppId does not exist on this account: set SubAppId "
    "under defaults.vod in the manifest to one of the account's VOD applications",
    "FailedOperation.UserStatusInavlid": "the account is suspended or in arrears: top up the "
    "account in the Tencent Cloud console, then run again",
    "FailedOperation.InvalidAccount": "the account cannot use VOD: check the account's status "
    "and activate Video on Demand in the console, then run again",
    "ResourceNotFound.ServiceNotExist": "the service is not activated on this account: activate "
    "it in the Tencent Cloud console, then run again",
    "LimitExceeded.Quota": "the VOD application's AIGC image quota is used up: raise the quota "
    "(or wait for it to renew), then run again",
    "FailedOperation.UserArrears": "the account is suspended for arrears: top up the account in "
    "the Tencent Cloud console, then run again",
    "FailedOperation.InvalidMpsUser": "MPS is not activated on this account: activate Media "
    "Processing Service in the console, then run again",
    "FailedOperation.InvalidUser": "the account cannot use MPS: check the account's status and "
    "activate Media Processing Service in the console, then run again",
}


def account_fix(stop_detail: str) -> str:
    """What the user must change, in plain words, for an account-wide error "CODE: message"."""
    code = stop_detail.partition(":")[0].strip()
    fix = _ACCOUNT_FIXES.get(code)
    if fix is None and code.startswith("AuthFailure"):
        fix = ("the API refused the credentials: check TENCENTCLOUD_SECRET_ID and "
               "TENCENTCLOUD_SECRET_KEY (or the credentials file) and this machine's clock")
    return fix or ("every request would fail the same way: fix the account or the manifest as "
                   "the message says")


def _hints(summary: JobSummary, account_error: bool = False) -> list[str]:
    totals = {c: sum(s[c] for s in summary.services.values()) for c in SUMMARY_COLUMNS}
    hints = []
    if totals["held_failed"]:
        hints.append(
            f"{totals['held_failed']} task(s) failed permanently before: fix the manifest, or "
            "send them again with --retry-failed (batcher status "
            f"{shlex.quote(summary.manifest)} --tasks --state failed lists them)"
        )
    if totals["in_doubt"] or totals["held_in_doubt"]:
        hints.append(
            f"{totals['in_doubt'] + totals['held_in_doubt']} mps task(s) are in doubt (the "
            f"server may have created them): batcher status {shlex.quote(summary.manifest)} "
            "--tasks --state "
            "in_doubt lists them; check them, then --resend-in-doubt to send them again"
        )
    if totals[NOT_SENT]:
        if account_error:
            hints.append(f"{totals[NOT_SENT]} task(s) not sent: they are sent once the "
                         "error below is fixed")
        else:
            hints.append(f"{totals[NOT_SENT]} task(s) not sent yet: run the same command again")
    return hints


def render_table(header: list[str], rows: Mapping[str, Mapping[str, int]]) -> list[str]:
    body = [[name, *(str(counts.get(column, 0)) for column in header[1:])]
            for name, counts in rows.items()]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return [
        "  " + "  ".join(cell.rjust(width) if i else cell.ljust(width)
                         for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
        for row in [header, *body]
    ]


# --- plan --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanReport:
    manifest: str
    batch: str
    ledger: str
    rate: float
    services: Mapping[str, ServicePlan] = field(default_factory=dict)

    def seconds_to_send(self) -> float:
        """Time at the rate cap; services run side by side, so the slowest one decides."""
        if self.rate <= 0:
            return 0.0
        return max((plan.to_send / self.rate for plan in self.services.values()), default=0.0)

    def rows(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "tasks": plan.total,
                "images": plan.images,
                "done": plan.done,
                NOT_SENT: plan.not_sent,
                "resend": plan.to_send - plan.not_sent,
                "held": plan.held,
            }
            for name, plan in sorted(self.services.items())
        }


    def model_rows(self) -> dict[str, dict[str, int]]:
        return {
            f"{name} {model}": {
                "tasks": counts.tasks,
                "images": counts.images,
                "to_send": counts.tasks_to_send,
                "images_to_send": counts.images_to_send,
            }
            for name, plan in sorted(self.services.items())
            for model, counts in sorted(plan.models.items())
        }

    def images_to_send(self) -> dict[str, int]:
        return {name: plan.images_to_send for name, plan in sorted(self.services.items())}


PLAN_COLUMNS = ("tasks", "images", "done", NOT_SENT, "resend", "held")
MODEL_COLUMNS = ("tasks", "images", "to_send", "images_to_send")
"""`not_sent` and `resend` are what this run sends: never sent, and sent before without
success (a retryable failure, a vod task in doubt, or what --retry-failed /
--resend-in-doubt let through); `held` waits for those options."""


def render_plan(report: PlanReport) -> str:
    rows = report.rows()
    if len(rows) > 1:
        rows["total"] = {column: sum(row[column] for row in rows.values())
                         for column in PLAN_COLUMNS}
    lines = [f"{report.manifest} (batch {report.batch}, ledger {report.ledger})"]
    lines.extend(render_table(["service", *PLAN_COLUMNS], rows))
    lines.extend(render_table(["model", *MODEL_COLUMNS], report.model_rows()))
    lines.append(f"  images to send: {images_to_send_line(report.images_to_send())}")
    lines.append(
        f"  sending takes about {format_duration(report.seconds_to_send())} at "
        f"{report.rate:g} requests/s per service (services run side by side)"
    )
    return "\n".join(lines)


def images_to_send_line(per_service: Mapping[str, int]) -> str:
    """`70 (vod 40, mps 30)`: what a run sends, in images, per service."""
    total = sum(per_service.values())
    if len(per_service) < 2:
        return str(total)
    return f"{total} ({', '.join(f'{name} {count}' for name, count in per_service.items())})"


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def dumps(value: Any) -> str:
    """One line of JSON, as every `--json` output is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
