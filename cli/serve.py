"""`canary serve`: run the SMTP listener until SIGINT or SIGTERM."""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Annotated

import typer

from canary.errors import CanaryError
from cli.workspace import DbOption, DnsOption, HomeOption, noun_app, workspace
from smtp_listener.limits import (
    DEFAULT_ERROR_LIMIT,
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    DEFAULT_MAX_SIZE,
    DEFAULT_MIN_DATA_RATE,
    DEFAULT_MIN_FREE_BYTES,
    DEFAULT_PORT,
    DEFAULT_PROBE_LIMIT,
    ClientLimits,
)

if TYPE_CHECKING:
    from smtp_listener.server import Listener

app = noun_app()


def configure_logging() -> None:
    """One line per transaction from Canary; aiosmtpd's per-command chatter is muted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)


async def _serve(listener: Listener) -> None:
    host, port = await listener.start()
    logging.getLogger("canary.listener").info("ready on %s:%d; stop with Ctrl-C", host, port)
    await listener.serve_forever()


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535,
                          help="TCP port to listen on (25 needs privileges: see the README).")
    ] = DEFAULT_PORT,
    max_size: Annotated[
        int, typer.Option("--max-size", min=1024, max=1 << 30,
                          help="Largest message accepted, in bytes (at most 1 GiB).")
    ] = DEFAULT_MAX_SIZE,
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", min=1, help="Seconds before an idle connection "
                            "is closed.")
    ] = DEFAULT_IDLE_TIMEOUT,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1,
                          help="Connections at once, in all; more get 421 (Postfix: 100).")
    ] = DEFAULT_MAX_CONNECTIONS,
    max_connections_per_client: Annotated[
        int, typer.Option("--max-connections-per-client", min=1,
                          help="Connections at once from one address; more get 421 (Postfix: "
                          "50). Relays allowed to XFORWARD are exempt.")
    ] = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    error_limit: Annotated[
        int, typer.Option("--error-limit", min=1,
                          help="Error replies in one session before 421 and close (Postfix: "
                          "20).")
    ] = DEFAULT_ERROR_LIMIT,
    probe_limit: Annotated[
        int, typer.Option("--probe-limit", min=1,
                          help="Recipients that are no alias, per client address per minute, "
                          "before 450.")
    ] = DEFAULT_PROBE_LIMIT,
    min_data_rate: Annotated[
        int, typer.Option("--min-data-rate", min=1,
                          help="Bytes per second a message must keep arriving at, beyond the "
                          "idle timeout, before 421 (Postfix: 500).")
    ] = DEFAULT_MIN_DATA_RATE,
    min_free_mb: Annotated[
        int, typer.Option("--min-free-mb", min=0,
                          help="Free disk space below which MAIL FROM gets 452 (or 1 % of the "
                          "disk, if larger).")
    ] = DEFAULT_MIN_FREE_BYTES // (1024 * 1024),
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Run the SMTP listener until SIGINT/SIGTERM; it analyses and delivers mail as it
    arrives, and sends alerts."""
    import asyncio

    from smtp_listener.server import Listener, ListenerSettings, new_event_loop
    from smtp_listener.writer import StoreUnavailable

    configure_logging()
    limits = ClientLimits(max_connections=max_connections,
                          max_connections_per_client=max_connections_per_client,
                          error_limit=error_limit, probe_limit=probe_limit,
                          min_data_rate=min_data_rate,
                          min_free_bytes=min_free_mb * 1024 * 1024)
    with workspace(ctx, home, db, dns) as space:
        settings = ListenerSettings(host=host, port=port, max_size=max_size,
                                    idle_timeout=idle_timeout,
                                    xforward_peers=frozenset(space.config.xforward_peers),
                                    limits=limits)
        listener = Listener(space.store, domains=frozenset(space.config.domains),
                            secret=space.secret, settings=settings,
                            analysis=space.analysis_config(),
                            delivery=space.delivery_config(),
                            alerts=space.config.alerts, alerts_home=space.home.path)
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(_serve(listener))
        except StoreUnavailable as error:
            raise CanaryError(f"The listener cannot use its database: {error}.") from error
        except PermissionError as error:
            raise CanaryError(
                f"Not allowed to listen on port {port}; use a port above 1023 and redirect 25 "
                "to it, or grant CAP_NET_BIND_SERVICE (see the README)."
            ) from error
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CanaryError(
                    f"{host}:{port} is already in use; stop the other server or pick --port."
                ) from error
            raise CanaryError(f"Cannot listen on {host}:{port}: {error.strerror}.") from error
