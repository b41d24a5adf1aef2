"""`python -m cacheme_packaging <check> ARGS...`: the checks `cargo xtask validate` runs."""

import sys

from .common import fail
from .compose_policy import check_compose_policy
from .dockerfiles import check_dockerfile
from .helm_extract import extract_helm
from .kind_config import check_kind_config
from .rendered import check_render
from .tiltfile import check_tiltfile


def main(argv):
    if not argv:
        fail("no check named")
    cmd, args = argv[0], argv[1:]
    if cmd == "dockerfile":
        check_dockerfile(*args)
    elif cmd == "compose-policy":
        check_compose_policy(*args)
    elif cmd == "render":
        check_render(*args)
    elif cmd == "tiltfile":
        check_tiltfile(*args)
    elif cmd == "kind-config":
        check_kind_config(*args)
    elif cmd == "extract-helm":
        extract_helm(*args)
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
