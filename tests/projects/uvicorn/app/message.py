MESSAGE = "hello from uvicorn v1"
