"""The freshness alert sensor: posts when an export falls behind its freshness policy and when it
is fresh again. Dagster's freshness daemon judges each asset; this sensor reads its verdicts."""

import json

from dagster import DefaultSensorStatus, SensorDefinition, SensorEvaluationContext, SkipReason, sensor

from xeroml_pipelines.config import XeroMLConfig
from xeroml_pipelines.defs.alerts.resources import SlackWebhook
from xeroml_pipelines.defs.keys import export_asset_key

ALERT_WEBHOOK_KEY = "alert_webhook"
PASS, FAIL = "PASS", "FAIL"  # the freshness verdicts that are reported


def build_freshness_alert_sensor(config: XeroMLConfig) -> SensorDefinition:
    exports = {export_asset_key(e, t): e for e in config.exports for t in e.tables}

    @sensor(
        name="xeroml_freshness_alerts",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Posts to the alerts webhook when an export turns late (freshness FAIL) and when it recovers.",
    )
    def _sensor(context: SensorEvaluationContext, alert_webhook: SlackWebhook):
        # cursor: the state last reported per asset, so each change is posted once
        reported: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        late, recovered = [], []
        # get_freshness_state_records is not marked public; nothing public reads the freshness
        # daemon's verdicts (Dagster's own freshness alerts are Dagster+'s)
        for key, record in context.instance.get_freshness_state_records(list(exports)).items():
            # Dagster's FreshnessState is a str enum outside its public API: read as its text
            name, state = key.to_user_string(), str(getattr(record.freshness_state, "value", record.freshness_state))
            before = reported.get(name)
            if state == FAIL and before != FAIL:
                export = exports[key]
                late.append(
                    f"{name}: no partition exported within {export.freshness_deadline_minutes} min "
                    f"(lag + grace) after its {export.cadence} window closed, since {record.updated_at:%Y-%m-%d %H:%M} UTC"
                )
            elif state == PASS and before == FAIL:
                recovered.append(f"{name}: fresh again")
            if state in (PASS, FAIL):
                reported[name] = state
        if late or recovered:
            lines = ([":red_circle: xeroml exports are late"] + late if late else []) + (
                [":large_green_circle: xeroml exports caught up"] + recovered if recovered else []
            )
            alert_webhook.post("\n".join(lines))
        context.update_cursor(json.dumps(reported, sort_keys=True))
        if not (late or recovered):
            return SkipReason("no change in the exports' freshness")
        return None

    return _sensor
