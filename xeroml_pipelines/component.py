"""The exports as a Dagster component, `xeroml_pipelines.component.XeroML`: a `defs.yaml` whose attributes
are the configuration's fields (clickhouse, exports, fleet, alerts; docs/configuration.md),
checked by `dg check yaml`/`dg check defs`, created by `dg scaffold defs`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import dagster as dg
from pydantic import RootModel

from xeroml_pipelines.config import XeroMLConfig
from xeroml_pipelines.config.attributes import attributes_json_schema, config_from_attributes
from xeroml_pipelines.config.loading import COMPONENT_TYPE, embedded_scope
from xeroml_pipelines.defs.location import build_definitions


class XeroMLAttributes(RootModel[dict[str, Any]]):
    """The attributes as written: templates are rendered, and the configuration validated, when
    the component loads; the JSON schema (`dg check yaml`) is the configuration's."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return attributes_json_schema()


_EXAMPLE = """\
# The exports of this folder's component (xeroml-pipelines' docs/configuration.md lists every
# field). Try it on demo data: XEROML_CONFIG=<this file> xeroml seed --start {start}, then
# materialize a partition in `dg dev` or run XEROML_CONFIG=<this file> xeroml export {start}.
type: {type}
attributes:
  clickhouse:
    # embedded ClickHouse (chDB) in the project; a server: url: https://host:8443, password: "{{{{ env.CLICKHOUSE_PASSWORD }}}}"
    url: "chdb://{{{{ context.project_root }}}}/xeroml-db"
  exports:
    - name: {name}
      project_id: demo
      start_date: "{start}"
      destination:
        provider: local
        path: "{{{{ context.project_root }}}}/xeroml-export"
        # provider: s3, bucket: my-bucket, region: eu-west-1,
        # access_key_id: "{{{{ env.AWS_ACCESS_KEY_ID }}}}", secret_access_key: "{{{{ env.AWS_SECRET_ACCESS_KEY }}}}"
      warehouse:
        type: duckdb
        path: "{{{{ context.project_root }}}}/xeroml-warehouse.duckdb"
"""


class XeroMLScaffolder(dg.Scaffolder):
    """`dg scaffold defs xeroml_pipelines.component.XeroML <folder>`: one export of the embedded ClickHouse
    into a folder of the project, loaded into DuckDB; it loads as written."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        name = "".join(c if c.isalnum() else "_" for c in request.target_path.name).strip("_").lower() or "exports"
        text = _EXAMPLE.format(type=COMPONENT_TYPE, name=name, start=(date.today() - timedelta(days=7)).isoformat())
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(text)


@dg.scaffold_with(XeroMLScaffolder)
class XeroML(dg.Component, dg.Resolvable):
    """XeroML's exports of traces, observations, scores and sessions from ClickHouse to cloud
    storage, with their checks, schedules, sensors and warehouse loads."""

    def __init__(self, config: XeroMLConfig) -> None:
        self.config = config

    @classmethod
    def model(cls) -> type[XeroMLAttributes]:
        return XeroMLAttributes

    # The embedded defaults' folder and the demo data's last day: the repository's own defs.yaml
    # declares the embedded defaults with them.
    @staticmethod
    @dg.template_var
    def xeroml_home() -> str:
        return embedded_scope()["xeroml_home"]

    @staticmethod
    @dg.template_var
    def demo_last_day() -> date | None:
        return embedded_scope()["demo_last_day"]

    @classmethod
    def resolve_from_model(cls, context: dg.ResolutionContext, model: Any) -> XeroML:
        tree = context.source_position_tree
        source = tree.position.filename if tree else "defs.yaml"
        return cls(config_from_attributes(model.root, context.resolve_value, source))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_definitions(self.config)
