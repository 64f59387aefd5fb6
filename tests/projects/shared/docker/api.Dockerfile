# Both services build from the project root (compose's `context: .`), each with its own
# Dockerfile kept in docker/.
FROM devloop/python:3
WORKDIR /srv
COPY api/ ./api/
EXPOSE 8000
CMD ["python3", "-m", "api"]
