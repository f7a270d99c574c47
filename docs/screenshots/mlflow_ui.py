"""Screenshot of the MLflow UI for the docs: starts `mlflow ui` on loopback, photographs a page with
headless Chromium, stops the server by its process id.

    python docs/screenshots/mlflow_ui.py --tracking-uri sqlite:///mlflow.db --experiment mnist-rules \
        --out docs/screenshots/mlflow_sweep.png
    python docs/screenshots/mlflow_ui.py --experiment mnist-rules --run SWEEP_RUN_ID --out run.png
    python docs/screenshots/mlflow_ui.py --experiment digits --chart test_accuracy --out chart.png

Needs Debian's `chromium` (apt-get install -y chromium) and the MLflow this environment has. The
server listens on 127.0.0.1 only, on a free port, and is stopped however the script ends. Chromium
is driven over its DevTools pipe (cdp.py) so the sweep's parent can be unfolded to show its trials,
and the chart view filtered to one metric.

The pages are opened in the UI's "Model training" view (``workflowType=machine_learning``): MLflow
3.17 shows the view its sidebar switch selects, GenAI unless a user switched, whatever the
experiment's ``mlflow.experimentKind`` tag says.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

# The MLflow 3 UI's own markup (checked with MLflow 3.17): a parent run's expand button in the run
# table, and the assistant side panel's close button. If a later UI renames them, the screenshot is
# still taken, with the children folded (the script says so).
EXPAND_PARENTS = """(() => { const buttons = [...document.querySelectorAll(
  'button[data-component-id*="runnamecellrenderer"]')]; buttons.forEach(b => b.click()); return buttons.length; })()"""
CLOSE_ASSISTANT = """(() => { const close = document.querySelector(
  'button[data-component-id="mlflow.assistant.chat_panel.close"]') || [...document.querySelectorAll(
  'button[aria-label="Close"]')].find(b => (b.closest('div[class]')?.parentElement?.innerText || '').includes(
  'Assistant')); close?.click(); return !!close; })()"""
RUN_TABLE_READY = "!!document.querySelector('a[href*=\"/runs/\"]')"
# The chart view (the second of the three view buttons above the run table) and its chart filter.
CHART_SEARCH = 'input[placeholder="Search metric charts"]'
CHART_SEARCH_READY = f"!!document.querySelector('{CHART_SEARCH}')"
FOCUS_CHART_SEARCH = f"(() => {{ document.querySelector('{CHART_SEARCH}').focus(); return true; }})()"
ENLARGE_CHART = """(() => { const b = document.querySelector('button[data-component-id="fullscreen_button_chartcard"]');
  b?.click(); return !!b; })()"""
ML_VIEW = "workflowType=machine_learning"


def main() -> int:
    args = _arguments()
    browser = shutil.which("chromium")
    if browser is None:
        print("error: Debian's chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    experiment_id = _experiment_id(args.tracking_uri, args.experiment)
    page = f"#/experiments/{experiment_id}/runs" + (f"/{args.run}" if args.run else "") + f"?{ML_VIEW}"
    if args.chart:
        page += "&compareRunsMode=CHART"
    with mlflow_ui(args.tracking_uri) as base_url:
        _screenshot(browser, f"{base_url}/{page}", args)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) of {page}")
    return 0


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument("--experiment", required=True, help="the experiment whose run table to show")
    parser.add_argument("--run", help="show this run's page instead (e.g. a sweep's parent)")
    parser.add_argument(
        "--chart", metavar="METRIC", help="show the chart view filtered to this metric, its chart enlarged"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots/mlflow_ui.png"))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--render-seconds", type=int, default=60, help="how long to wait for the run table")
    return parser.parse_args()


def _experiment_id(uri: str, name: str) -> str:
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
    if experiment is None:
        sys.exit(f"error: no experiment {name!r} in {uri}")
    return experiment.experiment_id


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def mlflow_ui(uri: str):
    """`mlflow ui` on a free loopback port, in its own process group so its workers stop with it."""
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(base_url, server)
        yield base_url
    finally:
        _stop(server)


def _wait_until_healthy(base_url: str, server: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: mlflow ui exited with code {server.returncode} before it served")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"error: mlflow ui did not answer on {base_url} within {seconds:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    # The group's id is the server's PID (start_new_session): this reaches its workers, nothing else.
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def _screenshot(browser: str, url: str, args) -> None:
    from cdp import Browser

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        page = Browser(browser, profile, args.width, args.height)
        try:
            page.call("Page.navigate", session=True, url=url)
            if not page.wait_for(RUN_TABLE_READY, args.render_seconds):
                print("warning: no run appeared on the page in time", file=sys.stderr)
            page.evaluate(CLOSE_ASSISTANT)
            if args.chart:
                _filter_charts(page, args.chart, args.render_seconds)
            elif not args.run and not page.evaluate(EXPAND_PARENTS):
                print("warning: no parent run to expand in the run table", file=sys.stderr)
            time.sleep(3)  # the expanded rows load their children and redraw
            args.out.write_bytes(page.screenshot())
        finally:
            page.close()


def _filter_charts(page, metric: str, seconds: int) -> None:
    """Type ``metric`` into the chart view's search, as a user would, and enlarge the one chart left
    (its expand button), where the legend names every run in full."""
    if not page.wait_for(CHART_SEARCH_READY, seconds):
        print("warning: the chart view did not appear in time", file=sys.stderr)
        return
    page.evaluate(FOCUS_CHART_SEARCH)
    page.call("Input.insertText", session=True, text=metric)
    time.sleep(2)  # the charts are filtered as one types
    if not page.evaluate(ENLARGE_CHART):
        print(f"warning: no chart of {metric} to enlarge", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
