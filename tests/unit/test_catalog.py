"""Each pipeline's names: every asset is listed once, and no two pipelines share a name."""

from __future__ import annotations

from landfall.core.catalog import chain_of


def test_asset_names_lists_every_asset_of_the_chain():
    churn = chain_of("churn")
    assets = {value for value in churn if isinstance(value, str) and value.startswith("churn.")}
    assert set(churn.asset_names) == assets and len(churn.asset_names) == len(assets)


def test_two_pipelines_share_no_dag_asset_or_pool():
    churn, meters = chain_of("churn"), chain_of("meters")
    assert not {*churn.dag_ids, *churn.asset_names, churn.promotion_pool} & {
        *meters.dag_ids,
        *meters.asset_names,
        meters.promotion_pool,
    }
