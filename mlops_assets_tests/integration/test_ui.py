"""The UI path in a real browser: the Dagster webserver and daemon on a small project copy,
headless Chromium clicking through the asset graph, and the whole chain materialised.

The flow is the one a person follows:
1. Lineage (/asset-groups): skip the first-visit dialog, expand all groups, click the
   `landing_batches` node, **Materialize selected**. That run lands the weekly batches and
   registers one `raw_snapshots` partition per batch (dynamic partitions "batches").
2. Filter the graph to the chain (the nine DVC-stage assets; the registry assets
   `model_candidate` / `production_model` stay out: promoting needs a person's approval, so
   an unfiltered Materialize all ends in a refused promotion, a FAILURE run), then
   **Materialize all…**: the UI asks which partitions; choose **All**, **Launch backfill**.
   The daemon runs the backfill: landing again, the snapshots of all batches in one run
   (BackfillPolicy.single_run), then everything downstream in one run. The daemon moves a
   backfill on every 30 s, so this step takes 1.5-2 minutes.
3. GraphQL says every run succeeded and every asset has a materialisation; the Dagster
   instance agrees after the services stop (data versions = dvc.lock md5s); `dvc status`
   is clean.

The project's sensors and schedules are stopped before the daemon starts: this test is
about the manual path, and with them on, the landing_sensor would launch a run per new
batch file (its drift step fails while no model exists yet).

Screenshots and the service logs go to <repo>/test-artifacts/ui/ (git-ignored)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from mlops_assets.pipeline import STAGE_ASSETS, asset_outs
from mlops_assets_tests.conftest import REPO, run, tool_env
from mlops_assets_tests.integration.servers import (
    GraphQLError,
    Service,
    graphql,
    start_daemon,
    start_webserver,
    stop_automation,
    wait_daemon_healthy,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts" / "ui"
ASSET_KEYS = [key for keys in STAGE_ASSETS.values() for key in keys]
PARTITIONED = "raw_snapshots"
CHAIN_SELECTION = " or ".join(f"key:{k}" for k in ASSET_KEYS)  # typed into the graph filter

UI_TIMEOUT_MS = 60_000   # any single browser step (page load, click, dialog)
LANDING_TIMEOUT = 180    # the landing run launched from the UI
BACKFILL_TIMEOUT = 480   # the backfill: 3 daemon ticks of 30 s + the runs themselves

RUNS = """{ runsOrError { ... on Runs { results {
  runId status startTime endTime assetSelection { path } tags { key value } } } } }"""
BACKFILLS = """{ partitionBackfillsOrError { ... on PartitionBackfills { results {
  id status error { message } } } } }"""
PARTITIONS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  ... on AssetNode { partitionKeys partitionStats { numMaterialized numPartitions numFailed } } } }"""
LATEST = """query($keys: [AssetKeyInput!]!) { assetsLatestInfo(assetKeys: $keys) {
  assetKey { path } latestMaterialization { runId timestamp } } }"""
CHECKS = """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks {
  name blocking executionForLatestMaterialization { status } } } } } }"""
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL_RUNNING = {"REQUESTED", "CANCELING", "FAILING"}
BACKFILL_OK = {"COMPLETED_SUCCESS", "COMPLETED"}


class Session:
    """The running services: GraphQL calls, bounded polling, and failure messages that
    carry the runs and the webserver/daemon log tails."""

    def __init__(self, web: Service, daemon: Service) -> None:
        self.web, self.daemon = web, daemon
        self.url = web.url or ""

    def gql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.url, query, variables)

    def runs(self) -> list[dict[str, Any]]:
        return self.gql(RUNS)["runsOrError"]["results"]

    def logs(self, chars: int = 6000) -> str:
        return f"{self.web.describe(chars)}\n{self.daemon.describe(chars)}"

    def fail(self, message: str) -> NoReturn:
        try:
            table = "\n".join(f"  {_run_line(r)}" for r in self.runs()) or "  (none)"
        except (GraphQLError, OSError) as exc:
            table = f"  (could not list runs: {exc})"
        pytest.fail(f"{message}\nruns:\n{table}\n{self.logs()}", pytrace=False)

    def wait(self, what: str, timeout: float, check: Callable[[], Any],
             interval: float = 2) -> Any:
        """Poll `check` until it returns something truthy. Fails (with the logs) on timeout
        or when a service dies; a GraphQL hiccup (busy webserver) is retried. `check` may
        call self.fail to stop early."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            for s in (self.web, self.daemon):
                if not s.alive():
                    self.fail(f"{s.name} exited while waiting for {what}")
            try:
                result = check()
            except (GraphQLError, OSError) as exc:
                result, last_error = None, f" (last GraphQL error: {exc})"
            if result:
                return result
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout:.0f}s waiting for {what}{last_error}")
            time.sleep(interval)


def _run_line(r: dict[str, Any]) -> str:
    assets = ",".join(a["path"][-1] for a in r.get("assetSelection") or [])
    tags = {t["key"]: t["value"] for t in r.get("tags") or []}
    return (f"{r['runId'][:8]} {r['status']:<9} "
            f"backfill={tags.get('dagster/backfill', '-')} [{assets}]")


def _expand_all_groups(page: Any) -> None:
    """Graph settings (the gear at the bottom right) -> Expand all groups, unless expanded."""
    page.locator("svg foreignObject").first.wait_for()
    page.get_by_role("button", name="settings", exact=True).click()
    expand = page.get_by_role("menuitem", name="Expand all groups")
    collapse = page.get_by_role("menuitem", name="Collapse all groups")
    expand.or_(collapse).first.wait_for()
    if expand.count():
        expand.click()
    else:
        page.keyboard.press("Escape")
    page.locator("svg foreignObject").get_by_text("landing_batches", exact=True).first.wait_for()


def _shot(page: Any, name: str) -> None:
    page.wait_for_timeout(500)  # let the graph finish its layout animation
    page.screenshot(path=str(ARTIFACTS / name))


def test_materialise_the_whole_chain_from_the_ui(small_project: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing (`make browser-deps` installs Debian's chromium)")
    root = small_project
    home = root / ".dagster_home"
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    timings: dict[str, float] = {}
    started = time.monotonic()

    try:
        with start_webserver(root, home, log_path=ARTIFACTS / "webserver.log") as web:
            stopped = stop_automation(web.url)  # before the daemon's first tick
            print(f"stopped sensors/schedules: {stopped}")
            with start_daemon(root, home, log_path=ARTIFACTS / "daemon.log") as daemon:
                session = Session(web, daemon)
                wait_daemon_healthy(web.url, ("BACKFILL",), timeout=180, services=(web, daemon))
                timings["services up"] = time.monotonic() - started
                backfill_id = _drive_the_ui(sync_api, session, timings, started)
                _assert_outcome(session, backfill_id)
    finally:
        print("timings (s since start): "
              + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))

    _assert_instance(root)
    status = run(["dvc", "status", "--json"], root, tool_env(root, home))
    assert json.loads(status.stdout or "{}") == {}, f"dvc status not clean: {status.stdout}"


def _drive_the_ui(sync_api: Any, s: Session, timings: dict[str, float], started: float) -> str:
    show_nux = bool(s.gql("{ shouldShowNux }")["shouldShowNux"])
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            try:
                return _clicks(page, s, show_nux, timings, started)
            except sync_api.Error as exc:  # a Playwright timeout or a missing element
                try:
                    _shot(page, "failure.png")
                except sync_api.Error:
                    pass
                s.fail(f"browser step failed (screenshot {ARTIFACTS / 'failure.png'}): {exc}")
        finally:
            browser.close()


def _clicks(page: Any, s: Session, show_nux: bool, timings: dict[str, float],
            started: float) -> str:
    # 1. the asset graph; the first-visit dialog covers it on a fresh instance
    page.goto(f"{s.url}/asset-groups")
    if show_nux:
        skip = page.get_by_role("button", name="Skip")
        skip.click()
        skip.wait_for(state="hidden")
    page.get_by_role("button", name="Materialize all").wait_for()
    _expand_all_groups(page)
    _shot(page, "asset-graph.png")

    # 2. landing_batches alone: click its node, Materialize selected
    page.locator("svg foreignObject").get_by_text("landing_batches", exact=True).first.click()
    page.get_by_role("button", name="Materialize selected").click()
    page.get_by_text("Launched run").first.wait_for()
    _shot(page, "landing-launched.png")

    def landing_done() -> dict | None:
        runs = [r for r in s.runs()
                if [a["path"] for a in r["assetSelection"] or []] == [["landing_batches"]]]
        if not runs or runs[0]["status"] not in TERMINAL_RUN:
            return None
        if runs[0]["status"] != "SUCCESS":
            s.fail(f"the landing run launched from the UI ended {runs[0]['status']}")
        return runs[0]

    s.wait("the landing_batches run", LANDING_TIMEOUT, landing_done)
    n = len(s.gql(PARTITIONS, {"key": {"path": [PARTITIONED]}})
            ["assetNodeOrError"]["partitionKeys"])
    if n == 0:
        s.fail("landing_batches succeeded but registered no batch partitions")
    timings["landing run done"] = time.monotonic() - started

    # 3. the chain in the graph filter, then Materialize all -> all partitions of
    #    raw_snapshots -> Launch backfill (the daemon runs it)
    page.goto(f"{s.url}/asset-groups")
    page.get_by_role("button", name="Materialize all").wait_for()
    page.locator(".CodeMirror").filter(has=page.get_by_label("Search and filter assets")).click()
    page.keyboard.type(CHAIN_SELECTION)
    page.keyboard.press("Enter")
    page.wait_for_url("**/asset-groups~**")
    _expand_all_groups(page)
    page.get_by_role("button", name="Materialize all").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Launch backfill").wait_for()
    if not dialog.get_by_text(f"materialize {len(ASSET_KEYS)} assets").count():
        _shot(page, "failure.png")
        s.fail(f"the launch dialog is not for the chain's {len(ASSET_KEYS)} assets: "
               f"{dialog.inner_text()[:300]!r}")
    selected = dialog.get_by_text(f"{n} partitions selected", exact=True)
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not selected.is_visible():  # the partition list may still be loading
        if time.monotonic() > deadline:
            _shot(page, "failure.png")
            s.fail(f"the launch dialog never showed '{n} partitions selected'")
        dialog.get_by_role("button", name="All", exact=True).click()
        page.wait_for_timeout(1000)
    _shot(page, "materialize-all-dialog.png")
    dialog.get_by_role("button", name="Launch backfill").click()
    dialog.wait_for(state="hidden")
    timings["backfill launched"] = time.monotonic() - started

    def backfill_done() -> str | None:
        backfills = s.gql(BACKFILLS)["partitionBackfillsOrError"]["results"]
        if not backfills:
            return None
        if len(backfills) > 1:
            s.fail(f"expected one backfill, got {backfills}")
        failed = [r for r in s.runs() if r["status"] in {"FAILURE", "CANCELED"}]
        if failed:
            s.fail(f"run {failed[0]['runId'][:8]} ended {failed[0]['status']}")
        bf = backfills[0]
        if bf["status"] in BACKFILL_RUNNING:
            return None
        if bf["status"] not in BACKFILL_OK:
            s.fail(f"backfill {bf['id']} ended {bf['status']}: {bf.get('error')}")
        return bf["id"]

    backfill_id = s.wait("the backfill", BACKFILL_TIMEOUT, backfill_done, interval=3)
    s.wait("all runs to finish", 60, lambda: all(r["status"] in TERMINAL_RUN for r in s.runs()))
    timings["backfill done"] = time.monotonic() - started

    # 4. the record: the chain with every node materialised, and the backfill's page
    page.reload()
    page.get_by_role("button", name="Materialize all").wait_for()
    _expand_all_groups(page)
    _shot(page, "after-materialise.png")
    page.goto(f"{s.url}/runs/b/{backfill_id}")
    page.get_by_text("Succeeded").first.wait_for()
    _shot(page, "backfill.png")
    return backfill_id


def _assert_outcome(s: Session, backfill_id: str) -> None:
    runs = s.runs()
    print("runs:\n" + "\n".join(f"  {_run_line(r)} {(r['endTime'] or 0) - (r['startTime'] or 0):.1f}s"
                                for r in reversed(runs)))
    bad = [_run_line(r) for r in runs if r["status"] != "SUCCESS"]
    assert not bad, f"runs not SUCCESS: {bad}\n{s.logs()}"
    tag = {"key": "dagster/backfill", "value": backfill_id}
    assert any(tag in r["tags"] for r in runs), f"no run of backfill {backfill_id}"

    latest = s.gql(LATEST, {"keys": [{"path": [k]} for k in ASSET_KEYS]})["assetsLatestInfo"]
    materialised = {i["assetKey"]["path"][-1] for i in latest if i["latestMaterialization"]}
    missing = sorted(set(ASSET_KEYS) - materialised)
    assert not missing, f"assets without a materialisation: {missing}\n{s.logs()}"

    node = s.gql(PARTITIONS, {"key": {"path": [PARTITIONED]}})["assetNodeOrError"]
    stats = node["partitionStats"]
    assert stats["numPartitions"] == len(node["partitionKeys"]) > 0, stats
    assert stats["numMaterialized"] == stats["numPartitions"] and stats["numFailed"] == 0, stats

    # the blocking checks guard the chain; the non-blocking ones (drift, promotion gate)
    # report on the data and may fail by design (the sample data drifts over the holidays)
    checks = [(n["assetKey"]["path"][-1], c["name"],
               (c["executionForLatestMaterialization"] or {}).get("status"))
              for n in s.gql(CHECKS)["assetNodes"] if n["assetKey"]["path"][-1] in ASSET_KEYS
              for c in (n["assetChecksOrError"].get("checks") or []) if c["blocking"]]
    failed = [c for c in checks if c[2] != "SUCCEEDED"]
    assert checks and not failed, f"blocking checks not succeeded: {failed}"


def _assert_instance(root: Path) -> None:
    """The instance on disk agrees, read after the services stopped: every asset has a
    materialisation whose data version is its md5 in dvc.lock, all partitions are done."""
    import dagster as dg

    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    owned = asset_outs(root)
    with dg.DagsterInstance.from_config(str(root / ".dagster_home")) as instance:
        for stage, keys in STAGE_ASSETS.items():
            outs = {o["path"]: o["md5"] for o in lock[stage]["outs"]}
            for key in keys:
                ev = instance.get_latest_materialization_event(dg.AssetKey(key))
                assert ev is not None, f"{key}: no materialisation in the instance"
                version = ev.asset_materialization.tags.get("dagster/data_version")
                assert version == outs[owned[key][0]], (key, version, outs[owned[key][0]])
        batches = set(instance.get_dynamic_partitions("batches"))
        done = instance.get_materialized_partitions(dg.AssetKey(PARTITIONED))
        assert batches and done == batches, (sorted(batches), sorted(done))
