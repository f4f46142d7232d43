"""AWS Signature Version 4 by botocore's signer (Bedrock calls, S3 offloading): never hand-rolled crypto."""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sigv4_headers(method: str, url: str, headers: dict[str, str], body: bytes, access_key_id: str,
                  secret_access_key: str, service: str, region: str) -> dict[str, str]:
    """``headers`` plus the signature (and the headers it covers) for this request."""
    signed = AWSRequest(method, url, data=body, headers=headers)
    SigV4Auth(Credentials(access_key_id, secret_access_key), service, region).add_auth(signed)
    return dict(signed.headers.items())
