"""Shared output helpers: JSON for machines, rich for people."""

from __future__ import annotations

import json
from typing import Any

import click
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message


def proto_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))
