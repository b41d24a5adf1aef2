"""What every check uses."""

import sys

import yaml


def fail(msg):
    print("error: " + msg, file=sys.stderr)
    sys.exit(1)


def load_stream(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()
