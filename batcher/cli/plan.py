"""The `batcher plan` command: expand and validate a manifest, compare it with its ledger.

Sends nothing and needs no credentials; with credentials at hand (environment or profile file)
it also reads each vod application's AIGC image quota, which is free (docs/spend.md). `--json`
prints one line per task instead.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TYPE_CHECKING

from batcher.cli.options import add_json, add_ledger, add_manifests, add_rate, add_resume_rules
from batcher.cli.spend import add_prices_option, add_quota_options
from batcher.exceptions import ExitCode, UsageError

if TYPE_CHECKING:
    from batcher.manifest import Manifest, TaskKey


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = commands.add_parser("plan", help="expand and validate a manifest; send nothing")
    add_manifests(plan)
    add_ledger(plan, "ledger to compare with (default beside each manifest)")
    add_rate(plan, "rate used for the time estimate (default %(default)s)")
    add_resume_rules(plan)
    add_prices_option(plan)
    add_quota_options(plan)
    add_json(plan, 'one line per task: {"key", "service", "session_id", "params", "images"}')
    plan.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from batcher.cli.logs import configure_logging
    from batcher.cli.report import PlanReport, render_plan
    from batcher.cli.spend import cost_line, plan_quota_lines, price_table
    from batcher.manifest import load_manifest
    from batcher.manifest.discover import expand_manifest_paths
    from batcher.run.account import default_ledger_path
    from batcher.run.resume import ResumeRules, plan_manifest
    from batcher.run.spend import sending
    from batcher.state.replay import replay  # not the ledger facade: its writer needs asyncio

    configure_logging()
    paths = expand_manifest_paths(args.manifests)
    if args.ledger is not None and len(paths) > 1:
        raise UsageError("--ledger names one ledger, but several manifests were given: leave "
                         "it out (each manifest's ledger is <stem>.ledger.jsonl beside it)")
    rules = ResumeRules(retry_failed=args.retry_failed, resend_in_doubt=args.resend_in_doubt)
    prices = None if args.json else price_table(args)  # a bad table: exit 2, one line
    apps: Counter[int] = Counter()  # vod images to send per SubAppId, over every manifest
    for path in paths:
        manifest = load_manifest(path)
        if args.json:
            write_task_lines(manifest)
            continue
        ledger_path = args.ledger or default_ledger_path(path)
        # One pass: validation and the ledger comparison together (plan takes no lock: it only
        # reads, and a ledger is append-only).
        plans = plan_manifest(manifest, replay(ledger_path), rules)
        print(render_plan(PlanReport(str(manifest.path), manifest.batch, str(ledger_path),
                                     args.rate, plans)))
        if prices is not None:
            print(f"  {cost_line(sending([plans]), prices)}")
        apps.update(sending([plans]).apps)
    for line in plan_quota_lines(args, apps):  # with credentials only; sends no task
        print(line)
    return ExitCode.OK


def write_task_lines(manifest: Manifest) -> None:
    """One JSON line per task, as `plan --json` prints them, from ONE validating pass.

    The lines go to a spool (memory, then a temporary file) and reach stdout only once the whole
    manifest is known to be valid: a bad manifest prints its errors and no task.
    """
    import shutil
    import tempfile

    from batcher.cli.report import dumps

    with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, "w+", encoding="utf-8") as spool:
        write = spool.write

        def write_line(task: TaskKey) -> None:
            # key and service are hex and a fixed word, a SessionId is `batcher-` and hex or
            # JSON-escaped here: nothing else needs escaping.
            session_id = "null" if task.session_id is None else dumps(task.session_id)
            write(f'{{"key":"{task.key}","service":"{task.service}","session_id":{session_id},'
                  f'"params":{task.params_json},"images":{task.images}}}\n')

        manifest.validate(on_key=write_line, with_params=True)
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout)


SPOOL_IN_MEMORY = 8 << 20
"""Bytes of `plan --json` output held in memory before the spool moves to a temporary file."""
