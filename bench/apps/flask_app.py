"""flask: a Flask JSON route (GET /json), the framework overhead a real app pays."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/json")
def json_route():
    return jsonify(message="Hello, World!")


application = app
