FROM devloop/python:3
WORKDIR /srv
COPY web/ ./web/
EXPOSE 8080
CMD ["python3", "-m", "web"]
