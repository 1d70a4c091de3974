"""The Airflow UI in a real browser (headless Debian Chromium driven by Playwright): log in, open the
Assets view, see the pipeline's asset graph, open one asset's events and follow one to its run.

Sorts right after test_chain_e2e.py, so on a full run the graph shows a day that went all the way to
the champion; run alone it lands a file of its own, so it never depends on another module.
Screenshots go to the test state folder; LANDFALL_SCREENSHOT_DIR=docs/img refreshes the README's.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from journeys import CHURN, day_key, land, unique_day
from landfall.core.paths import REPO_ROOT
from landfall.ops.follow import follow_landing
from landfall.pipeline.datagen import make_corrupt

pytestmark = pytest.mark.stack
playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")

CHROMIUM = os.environ.get("LANDFALL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = os.environ.get("LANDFALL_SCREENSHOT_DIR")
# The pipeline, left to right: every asset and every DAG between them, as edges of the graph.
PIPELINE_EDGES = [
    (CHURN.landing, CHURN.ingest_dag),
    (CHURN.ingest_dag, CHURN.raw),
    (CHURN.ingest_dag, CHURN.quarantine),
    (CHURN.raw, CHURN.preprocess_dag),
    (CHURN.preprocess_dag, CHURN.training_dataset),
    (CHURN.preprocess_dag, CHURN.drift_report),  # each prepared day against the champion's window
    (CHURN.training_dataset, CHURN.train_dag),
    (CHURN.train_dag, CHURN.model_candidate),
    (CHURN.model_candidate, CHURN.evaluate_dag),
    (CHURN.evaluate_dag, CHURN.evaluation),
    (CHURN.evaluation, CHURN.deploy_dag),
    (CHURN.deploy_dag, CHURN.production_model),
    (CHURN.freshness_dag, CHURN.training_dataset),  # an hourly day's partial rollup at its deadline
    (CHURN.freshness_dag, CHURN.drift_report),  # and that day's drift report
]


@pytest.fixture
def browser_page(stack):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium (or set LANDFALL_CHROMIUM)"
        )
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1900, "height": 820})
        page.set_default_timeout(30_000)
        # Assertions too: a page on a loaded two-core machine took more than expect's default 5 s to list
        # the assets (a CI run failed with the asset's row rendered just after).
        playwright.expect.set_options(timeout=30_000)
        yield page
        browser.close()


def _shoot(page, stack, name: str, locator=None) -> None:
    folders = [stack.state.root / "screenshots"]
    if SCREENSHOT_DIR:
        folders.append(REPO_ROOT / SCREENSHOT_DIR)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (locator or page).screenshot(path=str(folder / name))


def test_the_asset_graph_shows_the_pipeline_and_an_event_leads_to_its_run(stack, airflow_api, browser_page):
    # A landing of our own (quarantined, so no training chain starts) gives the graph a fresh event.
    landed = land(stack, day_key(unique_day(2600)), make_corrupt("schema"))
    ingest = follow_landing(airflow_api, landed.key, landed.etag, timeout_s=240)

    page, base = browser_page, stack.airflow_url
    page.goto(f"{base}/")
    page.wait_for_url(lambda url: "/auth/login" in url)  # the UI sends an anonymous visitor to log in
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(stack.state.secrets().admin_password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)

    page.goto(f"{base}/assets")
    for asset in CHURN.asset_names:
        playwright.expect(page.get_by_role("link", name=asset, exact=True)).to_be_visible()
    _shoot(page, stack, "assets-list.png")

    page.get_by_role("link", name=CHURN.landing, exact=True).click()
    graph = page.locator(".react-flow")
    # 8 assets + 7 DAGs: the five of the chain, the freshness DAG (reads raw_daily; for a day landed
    # hour by hour it produces the day's training_dataset at the deadline) and the rollback DAG.
    playwright.expect(graph.locator(".react-flow__node")).to_have_count(15)
    nodes = {
        node.get_attribute("data-id"): node.inner_text().strip()
        for node in graph.locator(".react-flow__node").all()
    }
    edges = set()
    for edge in graph.locator(".react-flow__edge").all():
        source, _, target = edge.get_attribute("data-id").partition(
            "-"
        )  # "asset:1-dag:landfall_churn_ingest"
        edges.add((nodes[source], nodes[target]))
    assert set(PIPELINE_EDGES) <= edges, f"missing from the graph: {set(PIPELINE_EDGES) - edges}"
    time.sleep(1)  # let the graph finish fitting the view before the picture
    _shoot(page, stack, "asset-graph.png", graph)

    # The landing asset's events: ours is there and links to the ingest run it started.
    run_link = page.locator(f'a[href="/dags/{CHURN.ingest_dag}/runs/{ingest.run_id}"]')
    playwright.expect(run_link).to_be_visible()
    _shoot(page, stack, "asset-events.png")
    run_link.click()
    page.wait_for_url(f"**/dags/{CHURN.ingest_dag}/runs/{ingest.run_id}**")
    playwright.expect(page.get_by_text("report_quarantine").first).to_be_visible()
    _shoot(page, stack, "ingest-run.png")
