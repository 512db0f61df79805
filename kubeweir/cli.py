"""The ``kubeweir`` command: one click group whose subcommands live with their components.

Subcommands are imported only when run, so ``kubeweir read`` never loads the hub and
``kubeweir --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "read": "sniffer.read_cmd:read",
    "sniff": "sniffer.agent:sniff",
    "hub": "hub.cli:hub",
    "query": "hub.cli:query",
    "export": "hub.cli:export",
    "login": "hub.cli:login",
    "tap": "kubeweir.tap:tap",
}

_HELP = {
    "read": "Parse a pcap/pcapng file into entries.",
    "sniff": "Run the node agent: capture targeted pods and ship to the hub.",
    "hub": "Serve the hub: ingest, storage, query API and dashboard.",
    "query": "Query a hub with a CEL filter.",
    "export": "Export matching entries as HAR or PCAP.",
    "login": "Store an API token for the query commands.",
    "tap": "Standalone: hub + sniffer on this host (with --demo: a demo workload).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            return _unavailable(cmd_name)
        cmd: click.Command = getattr(mod, attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = [(name, _HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str) -> click.Command:
    @click.command(name=name, help=_HELP.get(name, ""))
    def cmd() -> None:
        raise click.ClickException(f"'kubeweir {name}' is not part of this build yet")

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubeweir")
def main() -> None:
    """kubeweir: every API call between the pods of a cluster, to those allowed to see it."""
