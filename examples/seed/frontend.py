"""A second service for the seed walkthrough: it calls the private API as its own identity.

It asks its metadata server (the one Moat starts for it, found through GCE_METADATA_HOST, as
Google's client libraries do on Cloud Run) for an ID token whose audience is the private
service's URL, and forwards the request with it. No key file anywhere.
"""
import os
import urllib.error
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
    req = urllib.request.Request(
        target, data=request.get_data() or b"from frontend", method="POST",
        headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return "backend said: " + resp.read().decode(), 200
    except urllib.error.HTTPError as e:
        return "backend refused: %d" % e.code, 502


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
