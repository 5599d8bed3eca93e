"""Dataset packages: what lands at a destination beside the payload (BagIt + sidecars)."""

from agent.package.bagit import COMMIT_MARKERS, PayloadEntry, TagFile, build_bag
from agent.package.sidecar import DatasetPackage, build_package

__all__ = ["COMMIT_MARKERS", "DatasetPackage", "PayloadEntry", "TagFile", "build_bag", "build_package"]
