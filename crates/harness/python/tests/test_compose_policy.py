import contextlib
import io
import json
import os
import tempfile
import unittest

from cacheme_packaging.compose_policy import check_compose_policy

HEALTHY = {"test": ["CMD", "true"]}


def config(redis_command, redis_volumes=None):
    redis = {
        "command": redis_command,
        "healthcheck": HEALTHY,
        "ports": [{"published": "16379", "target": 6379, "host_ip": "127.0.0.1"}],
    }
    if redis_volumes:
        redis["volumes"] = redis_volumes
    return {
        "services": {"redis": redis},
        "volumes": {
            "cache-me-postgres-data": {"name": "cache-me-postgres-data"},
            "cache-me-pgadmin-data": {"name": "cache-me-pgadmin-data"},
        },
    }


class ComposePolicy(unittest.TestCase):
    def check(self, cfg):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(cfg, f)
        self.addCleanup(os.unlink, f.name)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            check_compose_policy(f.name, "16379=redis:6379")

    def test_a_cache_redis_without_persistence_passes(self):
        self.check(config(["redis-server", "--appendonly", "no", "--save", ""]))

    def test_a_redis_that_persists_is_refused(self):
        for command, volumes in [
            (["redis-server", "--appendonly", "yes", "--save", ""], None),
            (["redis-server", "--appendonly", "no"], None),
            (["redis-server", "--appendonly", "no", "--save", ""], [{"type": "volume", "target": "/data"}]),
        ]:
            with self.subTest(command=command, volumes=volumes), self.assertRaises(SystemExit):
                self.check(config(command, volumes))


if __name__ == "__main__":
    unittest.main()
