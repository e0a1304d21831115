"""``strongroom local-cluster``: a small SeaweedFS cluster, boxed, S3 its only door."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from archive import localcluster
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_FAILED,
    ConfigOpt,
    CredentialsOwnerOpt,
    StoreUserOpt,
    console,
    settings_from,
)
from frontdoors.cli.station_cmds import notify_ready


@app.command("local-cluster")
def local_cluster(
    folder: Annotated[
        Path | None,
        typer.Option(help="cluster folder (default <data_dir>/seaweedfs-cluster)"),
    ] = None,
    base_port: Annotated[
        int | None,
        typer.Option(help="first port: S3 gateways on it and the next (default: a free range)"),
    ] = None,
    user: StoreUserOpt = None,
    credentials_owner: CredentialsOwnerOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the endpoints as JSON")] = False,
    config: ConfigOpt = None,
) -> None:
    """Run a SeaweedFS cluster on this machine, in the foreground: 1 master, 3
    volume servers in two racks (replication 010), 1 filer (leveldb), 2 S3
    gateways with Object Lock.

    Every node runs in one network and mount namespace of its own; only the two
    S3 ports are forwarded to 127.0.0.1 on the host. Point store.endpoints at
    both; the daemon's credentials are in <folder>/credentials.json (mode 0600).
    """
    settings = settings_from(config)
    folder = folder or settings.data_dir / "seaweedfs-cluster"
    try:
        cluster = localcluster.start(
            folder, base_port, user=user, credentials_owner=credentials_owner
        )
    except (localcluster.ClusterError, KeyError, OSError) as exc:
        console.print(f"[red]local cluster not started: {exc}[/]")
        raise typer.Exit(EXIT_FAILED) from exc
    try:
        if json_out:
            print(json.dumps({"endpoints": cluster.endpoints, "folder": str(folder)}), flush=True)
        else:
            console.print(
                escape(
                    f"SeaweedFS cluster, S3 at {' and '.join(cluster.endpoints)}; "
                    f"credentials in {folder / 'credentials.json'}\n"
                    f"[store]\nendpoints = {json.dumps(cluster.endpoints)}"
                ),
                highlight=False,
            )
        notify_ready()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.wait(1):
            if cluster.process.poll() is not None:
                console.print(
                    f"[red]the cluster box exited with {cluster.process.returncode}; "
                    f"see {folder}/weed.log[/]"
                )
                raise typer.Exit(EXIT_FAILED)
    finally:
        cluster.stop()
