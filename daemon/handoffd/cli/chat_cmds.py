"""``handoffctl chat | explain | status | models``: talk to a running daemon."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from handoffd.cli.output import echo_json, proto_dict
from handoffd.rpc.client import HandoffdClient, build_request
from handoffd.settings import default_socket_path
from handoffd.v1 import handoffd_pb2 as pb

_ROUTE_NAMES = {v: k for k, v in pb.Route.items()}

socket_option = click.option(
    "--socket",
    "address",
    envvar="HANDOFFD_SOCKET",
    default=lambda: str(default_socket_path()),
    show_default="$HANDOFFD_SOCKET or the default socket",
    help="Unix socket path or HOST:PORT of the daemon.",
)
token_option = click.option(
    "--token", envvar="HANDOFFD_TOKEN", default=None, help="App token (required over TCP)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _request_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--system", default=None, help="A system message."),
            click.option("--max-tokens", type=int, default=0, help="Largest answer (tokens)."),
            click.option("--temperature", type=float, default=None, help="0 = greedy."),
            click.option(
                "--prefer",
                type=click.Choice(["auto", "local", "cloud"]),
                default="auto",
                show_default=True,
                help="Handoff preference; the device's policy has the last word.",
            ),
            click.option("--label", "labels", multiple=True, help="Data label (repeatable)."),
        ]
    ):
        fn = option(fn)
    return fn


def _route(value: int) -> str:
    return _ROUTE_NAMES.get(value, "UNKNOWN")


def _reasons(decision: pb.Decision) -> str:
    return "; ".join(f"{r.rule_id}: {r.message}" for r in decision.reasons)


def final_summary(final: pb.ChatResponse) -> dict[str, Any]:
    """The JSON object ``chat --json`` prints."""
    return {
        "text": final.text,
        "route": _route(final.route),
        "reasons": [
            {"rule_id": r.rule_id, "message": r.message} for r in final.decision.reasons
        ],
        "strategy": final.decision.strategy,
        "usage": {
            "prompt_tokens": final.usage.prompt_tokens,
            "completion_tokens": final.usage.completion_tokens,
        },
        "timing": {
            "queue_ms": round(final.timing.queue_ms, 2),
            "ttft_ms": round(final.timing.ttft_ms, 2),
            "total_ms": round(final.timing.total_ms, 2),
            "decode_tokens_per_s": round(final.timing.decode_tokens_per_s, 2),
        },
        "cost_usd": final.cost_usd,
        "ledger_id": final.ledger_id,
        "model": final.model,
        "finish_reason": pb.FinishReason.Name(final.finish_reason),
        "client_request_id": final.client_request_id,
    }


@click.command()
@click.argument("prompt")
@_request_options
@socket_option
@token_option
@json_option
def chat(
    prompt: str,
    system: str | None,
    max_tokens: int,
    temperature: float | None,
    prefer: str,
    labels: tuple[str, ...],
    address: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Ask PROMPT and stream the answer, then print the route, tokens and speed."""
    request = build_request(
        prompt,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        prefer=prefer,
        labels=labels,
        client_request_id=f"handoffctl-{uuid.uuid4().hex[:12]}",
    )
    final: pb.ChatResponse | None = None
    stderr = Console(stderr=True, highlight=False)
    with HandoffdClient(address, token=token) as client:
        for event in client.chat_stream(request):
            kind = event.WhichOneof("event")
            if kind == "delta" and not as_json:
                sys.stdout.write(event.delta.text)
                sys.stdout.flush()
            elif kind == "final":
                final = event.final
    if final is None:
        raise click.ClickException("the daemon closed the stream without a final answer")
    if as_json:
        echo_json(final_summary(final))
        return
    sys.stdout.write("\n")
    t, u = final.timing, final.usage
    stderr.print(
        f"[dim]route={_route(final.route)} model={final.model} "
        f"tokens={u.prompt_tokens}+{u.completion_tokens} ttft={t.ttft_ms:.0f}ms "
        f"decode={t.decode_tokens_per_s:.1f} tok/s cost=${final.cost_usd:.6f}"
        + (f" ledger={final.ledger_id}" if final.ledger_id else "")
        + f"\nwhy: {_reasons(final.decision)}[/dim]"
    )


@click.command()
@click.argument("prompt")
@_request_options
@socket_option
@token_option
@json_option
def explain(
    prompt: str,
    system: str | None,
    max_tokens: int,
    temperature: float | None,
    prefer: str,
    labels: tuple[str, ...],
    address: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Show where PROMPT would go and why, without generating or sending anything."""
    request = build_request(
        prompt, system=system, max_tokens=max_tokens, temperature=temperature, prefer=prefer,
        labels=labels,
    )
    with HandoffdClient(address, token=token) as client:
        result = client.explain(request)
    if as_json:
        echo_json(proto_dict(result))
        return
    console = Console(highlight=False)
    d = result.decision
    console.print(f"route:    [bold]{_route(d.route)}[/bold] (strategy {d.strategy})")
    if d.cloud_target:
        console.print(f"target:   {d.cloud_target}")
    console.print(f"prompt:   {result.prompt_tokens} tokens")
    for r in d.reasons:
        console.print(f"  - [cyan]{r.rule_id}[/cyan]: {r.message}")
    for name, score in sorted(d.scores.items()):
        console.print(f"  {name} = {score:.4g}")
    if result.entities:
        found = ", ".join(f"{k} x{v}" for k, v in sorted(result.entities.items()))
        console.print(f"entities: {found}")
    if result.redacted_preview:
        console.print("would send (redacted):")
        console.print(result.redacted_preview, markup=False)
    if d.policy_hash:
        console.print(f"policy:   {d.policy_hash}")


@click.command()
@socket_option
@token_option
@json_option
def status(address: str, token: str | None, as_json: bool) -> None:
    """Is the daemon up and ready, and what is it running?"""
    with HandoffdClient(address, token=token, timeout_s=10) as client:
        result = client.status()
    if as_json:
        echo_json(proto_dict(result))
        return
    console = Console(highlight=False)
    console.print(f"handoffd {result.version} at {address}")
    console.print(f"ready:    {'yes' if result.ready else 'no (loading)'}")
    if result.model:
        console.print(f"model:    {result.model} on {result.execution_provider}")
    console.print(f"uptime:   {result.uptime_s:.0f}s, {result.active_requests} active requests")
    if result.policy_hash:
        console.print(f"policy:   {result.policy_hash}")
    for target in result.cloud_targets:
        console.print(f"cloud:    {target.name} ({target.model}) breaker {target.breaker}")


@click.command()
@socket_option
@token_option
@json_option
def models(address: str, token: str | None, as_json: bool) -> None:
    """List the models the daemon serves."""
    with HandoffdClient(address, token=token, timeout_s=10) as client:
        result = client.list_models()
    if as_json:
        echo_json(proto_dict(result)["models"])
        return
    table = Table("name", "kind", "layout", "precision", "context", "provider", "path")
    for m in result.models:
        table.add_row(
            m.name, m.kind, m.layout, m.precision, str(m.context_window), m.execution_provider,
            m.path,
        )
    Console().print(table)
