"""An optional price table the user names (`--prices FILE`, `BATCHER_PRICES`): what one image
costs per service, model and version, for the estimated cost `plan` and the confirmation show
(docs/spend.md). The API publishes no prices, so nothing is guessed: without a table, or for a
model the table does not name, no cost is shown.

The file is YAML (JSON is YAML too). Its keys are the plan's model column, `ModelName
ModelVersion`; a name alone prices every version of that model::

    currency: USD
    vod:
      GEM 2.5: 0.03
      GEM 3.0: 0.04
    mps:
      Hunyuan: 0.02
      (default): 0.02      # tasks that name no model

A mistake is one line naming the file and line, exit 2.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batcher.api.services import SERVICE_NAMES
from batcher.exceptions import UsageError

PRICES_ENV = "BATCHER_PRICES"


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Price per image by (service, model key); `currency` as the file names it."""

    source: str
    currency: str = ""
    prices: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def per_image(self, service: str, model: str) -> float | None:
        """The price of one image of `model` (`ModelName ModelVersion`); None if not priced."""
        price = self.prices.get((service, model))
        if price is None:
            price = self.prices.get((service, model.split(" ", 1)[0]))
        return price

    def format(self, amount: float) -> str:
        # Cents for a bill, more digits for a small one (a few images at 0.003 each).
        return f"{amount:,.{2 if amount >= 10 else 4}f} {self.currency}".rstrip()


def prices_path(given: Path | None) -> Path | None:
    """`--prices`, else `BATCHER_PRICES`, else none."""
    if given is not None:
        return given
    named = os.environ.get(PRICES_ENV)
    return Path(named) if named else None


def load_prices(path: Path) -> PriceTable:
    """The table in `path`; UsageError (exit 2) naming file:line for a mistake."""
    import yaml  # late: only a run that names a table pays for it

    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{where}: cannot read the price table: {error}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{where}{line}: not a YAML/JSON price table: "
                         f"{getattr(error, 'problem', None) or error}") from None
    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{where}:1: a price table is a mapping: currency, then vod: and mps: "
                         "with `ModelName ModelVersion: price per image` entries")
    currency = ""
    prices: dict[tuple[str, str], float] = {}
    for key, value in root.value:
        name = key.value
        at = f"{where}:{key.start_mark.line + 1}"
        if name == "currency" and isinstance(value, yaml.ScalarNode):
            currency = str(value.value)
        elif name in SERVICE_NAMES and isinstance(value, yaml.MappingNode):
            for model, price in value.value:
                prices[(name, str(model.value))] = _price(price, f"{where}:"
                                                                 f"{price.start_mark.line + 1}")
        else:
            raise UsageError(f"{at}: unexpected `{name}`: a price table has currency, "
                             f"{' and '.join(SERVICE_NAMES)} (each a mapping of "
                             "`ModelName ModelVersion: price per image`)")
    return PriceTable(where, currency, prices)


def _price(node: object, at: str) -> float:
    import yaml

    text = node.value if isinstance(node, yaml.ScalarNode) else None
    try:
        value = float(text) if isinstance(text, str) else math.nan
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise UsageError(f"{at}: a price per image is a number >= 0 (e.g. 0.03), got "
                         f"{text if text is not None else 'a list or mapping'!s}")
    return value
