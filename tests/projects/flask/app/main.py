from flask import Flask

from app.message import MESSAGE

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return MESSAGE + "\n"
