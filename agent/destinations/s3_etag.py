"""Is the object at S3 already the source's bytes? Recomputing its ETag from the source.

A multipart ETag is the MD5 of the parts' MD5s and ``-<count>``; the part size is the
configured one, or (an object another tool uploaded) the size that gives that count.
An ETag that is no MD5 (SSE-KMS, other stores) cannot tell: the file is sent again.
"""

from __future__ import annotations

import hashlib

from agent.destinations.base import PayloadItem
from agent.destinations.moving import checked_source
from agent.pipeline.hashing import read_at


def etag_matches(etag: str, item: PayloadItem, configured_part_bytes: int) -> bool:
    """Whether an S3 ETag (the MD5 of a single PUT, or of the parts' MD5s and their count) is
    the ETag of the source's bytes, read from the source (checked before and after)."""
    digest, _, count_text = etag.partition("-")
    if len(digest) != 32 or (count_text and not count_text.isdigit()):
        return False  # an ETag that is no MD5 (SSE-KMS, other stores): cannot tell, send again
    size = item.identity.size_bytes
    count = int(count_text) if count_text else 0
    part_bytes = configured_part_bytes if count == 0 else max(1, -(-size // count))
    candidates = [part_bytes] if count == 0 else sorted({configured_part_bytes, part_bytes})
    with checked_source(item) as source:
        for size_of_part in candidates:
            if count and -(-size // size_of_part) != count:
                continue
            whole = hashlib.md5()  # noqa: S324 - S3's ETag is MD5
            part_digests = []
            for offset in range(0, max(size, 1), size_of_part):
                body = read_at(source, min(size_of_part, size - offset), offset)
                whole.update(body)
                part_digests.append(hashlib.md5(body).digest())  # noqa: S324
            if count == 0 and whole.hexdigest() == digest:
                return True
            if count and hashlib.md5(b"".join(part_digests)).hexdigest() == digest:  # noqa: S324
                return True
    return False
