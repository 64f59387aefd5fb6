MESSAGE = "hello from flask v1"
