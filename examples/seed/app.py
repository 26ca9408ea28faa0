"""The seed service: a plain Cloud Run hello-world style echo app.

Runs unchanged on Cloud Run or under Moat (`moat run deploy … --command "python3 app.py"`):
it listens on 0.0.0.0:$PORT and echoes the request body.

    curl URL -d "Testing public access"   ->   Hello! You sent: Testing public access
"""

import os

from flask import Flask, request

app = Flask(__name__)


@app.route("/", methods=["GET", "POST"])
def hello():
    return f"Hello! You sent: {request.get_data(as_text=True)}"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
