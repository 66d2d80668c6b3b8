"""What a fleet run reads besides ClickHouse: the export registry, and which of its exports the
run is for (all of a shard's by default; set at launch for one project's backfill)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from xeroml_pipelines.registry.store import Registry

REGISTRY_KEY = "xeroml_registry"
SCOPE_KEY = "xeroml_fleet_scope"


class RegistryResource(ConfigurableResource):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry; default: XEROML_REGISTRY_URL, read when a run starts "
        "(it may hold a password), or the SQLite file beside the demo database",
    )

    def open(self) -> Registry:
        return Registry(self.url).create()


class FleetScope(ConfigurableResource):
    """Run configuration (`resources: {xeroml_fleet_scope: {config: {projects: [...]}}}`): one
    setting for every shard of the run, as a backfill from the UI launches it."""

    projects: list[str] = Field(
        default_factory=list,
        description="Only these registered exports (names or project ids): one project's backfill or catch-up. "
        "Empty: every export due.",
    )
