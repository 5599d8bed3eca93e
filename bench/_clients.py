"""The baselines' Python clients, each run as a whole process (`python bench/_clients.py
NAME ARGS...`), as a facility would run a script around them: interpreter start and imports
count, as they do for the agent's `harvest scan` and for rclone.

    boto3 ENDPOINT SOURCE KEY PART_BYTES      boto3 upload_file (upload only)
    tus URL SOURCE SHA256                     one streaming PATCH of the whole file
    sftp PORT KEY_FILE SOURCE REMOTE          paramiko put (upload only)
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path


def boto3_upload_file(endpoint: str, source: str, key: str, part_bytes: str, access: str, secret: str) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=access, aws_secret_access_key=secret)  # fmt: skip
    config = TransferConfig(multipart_chunksize=int(part_bytes), multipart_threshold=int(part_bytes))
    client.upload_file(source, "imaging", key, Config=config)


def raw_tus(url: str, source: str, sha256: str, token: str) -> None:
    import requests

    headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}
    metadata = "sha256 " + base64.b64encode(sha256.encode()).decode()
    size = Path(source).stat().st_size
    created = requests.post(
        url, timeout=60, headers={**headers, "Upload-Length": str(size), "Upload-Metadata": metadata}
    )
    location = requests.compat.urljoin(url, created.headers["Location"])
    with open(source, "rb") as stream:
        response = requests.patch(location, data=stream, timeout=600, headers={
            **headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(size)})  # fmt: skip
    response.raise_for_status()


def paramiko_put(port: str, key_file: str, source: str, remote: str) -> None:
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - local test server
    client.connect("127.0.0.1", port=int(port), username="harvest", key_filename=key_file, allow_agent=False,
                   look_for_keys=False)  # fmt: skip
    client.open_sftp().put(source, remote)
    client.close()


CLIENTS: dict[str, Callable[..., None]] = {"boto3": boto3_upload_file, "tus": raw_tus, "sftp": paramiko_put}

if __name__ == "__main__":
    CLIENTS[sys.argv[1]](*sys.argv[2:])
