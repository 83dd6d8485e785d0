FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY jeeves ./jeeves
COPY migrations ./migrations
COPY models ./models
COPY config ./config
RUN pip install --no-cache-dir -e . && useradd --system --create-home jeeves
USER jeeves
HEALTHCHECK --interval=60s --timeout=20s CMD ["jeeves", "health"]
CMD ["jeeves", "run"]
