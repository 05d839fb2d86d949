"""`REDIS_SENTINELS`: the channel layer finds Redis through Sentinel (channels_redis's sentinel pool), so a
deployment can fail Redis over; the rooms recover from a failover as from any Redis outage (tests/faults/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.servers import ROOT, free_port, require

pytestmark = pytest.mark.redis

PROBE = """
import asyncio, json
from django.conf import settings
from channels.layers import get_channel_layer
async def main():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("room-1", channel)
    await layer.group_send("room-1", {"type": "room.event", "frame": "hello"})
    print(json.dumps({"host": settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0], "got": await layer.receive(channel)}))
asyncio.run(main())
"""


def test_the_channel_layer_reaches_redis_through_sentinel(tmp_path: Path) -> None:
    require(None if shutil.which("redis-server") else "redis-server is not installed")
    master, sentinel = free_port(), free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor chat 127.0.0.1 {master} 1\n")
    processes = [
        subprocess.Popen(["redis-server", "--port", str(master), "--bind", "127.0.0.1", "--save", ""]),
        subprocess.Popen(["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL),
    ]
    try:
        time.sleep(0.5)
        env = {**os.environ, "REDIS_SENTINELS": f"127.0.0.1:{sentinel}", "REDIS_SENTINEL_MASTER": "chat"}
        env.pop("REDIS_URL", None)
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        probe = json.loads(result.stdout.strip().splitlines()[-1])
        assert probe["host"]["master_name"] == "chat" and probe["host"]["sentinels"] == [["127.0.0.1", sentinel]]
        assert probe["got"] == {"type": "room.event", "frame": "hello"}
    finally:
        for process in processes:
            process.kill()
            process.wait()
