"""Reading an export folder back the way its users' tools do, for the export tests."""

from __future__ import annotations

import base64
import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from dynascan_async._decode import decode_items
from dynascan_async._encode import dumps_item


def jsonl_items(folder: Path) -> list[Any]:
    return [
        json.loads(line, parse_float=Decimal, parse_int=Decimal)
        for part in sorted(folder.glob("*.jsonl"))
        for line in part.read_text().splitlines()
    ]


def as_cli_json(raw_items: list[dict[str, Any]]) -> list[Any]:
    text = "".join(dumps_item(item) for item in decode_items(raw_items))
    return [json.loads(line, parse_float=Decimal, parse_int=Decimal) for line in text.splitlines()]


def ddb_json_items(folder: Path) -> list[dict[str, Any]]:
    """Every line of every part, as DynamoDB's export readers parse them (gzip, JSON)."""
    items = []
    for part in sorted(folder.glob("*.json.gz")):
        with gzip.open(part, "rt", encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                assert list(record) == ["Item"]
                items.append(record["Item"])
    return items


def raw_as_json(item: dict[str, Any]) -> Any:
    """A raw item as DynamoDB JSON text has it: binary values as base64."""

    def value(av: dict[str, Any]) -> Any:
        ((tag, inner),) = av.items()
        if tag == "B":
            return {tag: base64.b64encode(inner).decode()}
        if tag == "BS":
            return {tag: [base64.b64encode(b).decode() for b in inner]}
        if tag == "L":
            return {tag: [value(v) for v in inner]}
        if tag == "M":
            return {tag: {k: value(v) for k, v in inner.items()}}
        return {tag: inner}

    return {name: value(av) for name, av in item.items()}


def visible(folder: Path) -> list[str]:
    """What a reader of the folder sees: names not starting with "_" or "."."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(("_", ".")))
