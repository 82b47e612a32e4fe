"""kpi.image_warmup: after `partner-kpi serve`'s sync the images are loaded, so the next
every-partner question loads none; a failed warm-up is logged, never raised."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.serve_jobs import process_jobs
from kpi import customer_image, deal_image, images, stage_image, totals_image
from kpi.engine import KpiEngine
from kpi.image_warmup import warm_images
from kpi.store import Store
from settings.app import AppConfig, LoadedConfig
from settings.periods import Period
from tests.demo_folder import DEMO_AS_OF, demo_folder

LOADERS = (totals_image, stage_image, deal_image, customer_image)


def _refuse_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("an image was loaded by the question")

    for module in LOADERS:
        monkeypatch.setattr(module, "load", refused)


def test_serves_sync_loads_the_images_for_the_next_question(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    app = AppConfig.model_validate({"source": "files"})
    config = LoadedConfig(app, None, demo_folder(), "unused")
    jobs = process_jobs(store, config, None)
    sync = next(kind for kind in jobs.kinds if kind.name == "sync")
    sync.runner()  # type: ignore[attr-defined]
    _refuse_loads(monkeypatch)
    period = Period("last-90d", DEMO_AS_OF - timedelta(days=89), DEMO_AS_OF + timedelta(days=1))
    cards = KpiEngine(store, app.kpi_settings).all_partners(period, as_of=DEMO_AS_OF)
    assert any(card["kpis"]["won_revenue"] for card in cards.values())
    assert any(card["kpis"]["customers_active"] for card in cards.values())


def test_a_failed_warm_up_is_logged(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(images, "MIN_ROWS", 0)

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("no memory left")

    monkeypatch.setattr(stage_image, "load", broken)
    warm_images(store)
    assert "loading the KPI images after the sync failed: no memory left" in caplog.text
