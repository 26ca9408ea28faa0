"""A second service for the seed walkthrough: it calls the private API as its own identity.

It asks its metadata server (the one Moat starts for it, found through GCE_METADATA_HOST, as
Google's client libraries do on Cloud Run) for an ID token whose audience is the private
service's URL, and forwards the request with it. No key file anywhere.
"""
import http.client
import os
import urllib.parse
import urllib.request

from flask import Flask, request

app = Flask(__name__)


def id_token(audience):
    host = os.environ["GCE_METADATA_HOST"]
    url = ("http://%s/computeMetadata/v1/instance/service-accounts/default/identity"
           "?audience=%s&format=full" % (host, audience))
    req = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()


@app.route("/", methods=["GET", "POST"])
def call_backend():
    target = os.environ["TARGET_URL"]
    token = id_token(target)
    url = urllib.parse.urlsplit(target)
    # Names under .localhost are loopback (RFC 6761); the C library may not know that.
    host = "127.0.0.1" if url.hostname.endswith(".localhost") else url.hostname
    conn = http.client.HTTPConnection(host, url.port or 80, timeout=10)
    conn.request("POST", url.path or "/", body=request.get_data() or b"from frontend",
                 headers={"Host": url.netloc, "Authorization": "Bearer " + token})
    resp = conn.getresponse()
    body = resp.read().decode()
    if resp.status != 200:
        return "backend refused: %d" % resp.status, 502
    return "backend said: " + body, 200


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
