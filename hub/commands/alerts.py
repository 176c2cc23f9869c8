"""`mimamori alerts`: the alert evaluator as its own process (beside N `mimamori ingest`), and a look at alerts."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.commands import plain

app = typer.Typer(help="Hazard alerts: run the evaluator, list alerts.", no_args_is_help=True)
out = Console()


@app.command("run")
def run() -> None:
    """Evaluate rules on the readings every `mimamori ingest` commits, and distribute alerts (MQTT, webhooks).

    Run one or more: one evaluates (an advisory lock decides), the others stand by and take over if it stops.
    """
    from alerts import start_alert_services
    from alerts.feed import ReadingListener, leadership
    from api.ngsi_ld.subscriptions import NOTIFICATION_FORMATS
    from mimamori.db import make_pool
    from mimamori.logs import setup_logging
    from mimamori.settings import load_settings

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_json)
    if settings.metrics_port:
        from mimamori.metrics import serve_metrics

        serve_metrics(settings.metrics_host, settings.metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with leadership(settings, stop) as leader:
        if not leader:
            return
        pool = make_pool(settings)
        try:
            services = start_alert_services(settings, pool, stop, notification_formats=NOTIFICATION_FORMATS)
            listener = threading.Thread(
                target=ReadingListener(
                    settings, services.engine, also=[services.sta.on_readings] if services.sta else []
                ).run,
                args=(stop,),
                name="alerts-feed",
                daemon=True,
            )
            listener.start()
            out.print(f"evaluating alert rules; MQTT {settings.mqtt}, topics {settings.mqtt_topic_prefix}/alerts/#")
            stop.wait()
            services.join()
            listener.join(5)
        finally:
            pool.close()


@app.command("list")
def list_(
    state: Annotated[str, typer.Option(help="Comma-separated states.")] = "open,acknowledged",
    min_level: Annotated[int, typer.Option(min=1, max=5)] = 1,
) -> None:
    """Alerts by level, newest first."""
    from alerts import AlertFilter, list_alerts
    from mimamori.db import connect
    from mimamori.settings import load_settings

    with connect(load_settings().dsn) as conn:
        rows = list_alerts(conn, AlertFilter(states=state.split(","), min_level=min_level, limit=1000), None)
    table = Table("id", "level", "state", "rule", "subject", "hazard", "value", "device time", "tenant")
    for a in rows:
        value = "" if a["value"] is None else f"{a['value']:.3f}"
        table.add_row(
            str(a["id"]),
            str(a["level"]),
            a["state"],
            plain(a["rule_id"]),
            plain(a["subject"]),
            plain(a["hazard"]),
            value,
            str(a["device_time"]),
            plain(a["tenant_id"]),
        )
    out.print(table)
