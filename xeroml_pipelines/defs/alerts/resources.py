"""Where alerts go: a Slack incoming webhook (or any endpoint that takes Slack's `{"text": ...}`)."""

import json
import urllib.request

from dagster import ConfigurableResource


class SlackWebhook(ConfigurableResource):
    url: str  # a secret: configured with EnvVar

    def post(self, text: str) -> None:
        request = urllib.request.Request(
            self.url, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
        )
        # a refused or unreachable webhook raises: the sensor tick fails and the next one retries
        with urllib.request.urlopen(request, timeout=15) as response:
            response.read()
