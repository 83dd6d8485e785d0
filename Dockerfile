# A normal (non-editable) install: the wheel carries the migrations, the shipped model and the
# data, so the image holds no source tree. Trained models and any SQLite database go to the
# data directory, /var/lib/jeeves (a volume in docker-compose.yml).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jeeves ./jeeves
COPY migrations ./migrations
COPY models ./models
COPY data ./data
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim-bookworm
COPY --from=build /dist /dist
RUN pip install --no-cache-dir /dist/*.whl && rm -rf /dist \
    && useradd --system --create-home jeeves \
    && mkdir -p /var/lib/jeeves && chown jeeves /var/lib/jeeves
ENV JEEVES_DATA_DIR=/var/lib/jeeves
WORKDIR /var/lib/jeeves
USER jeeves
HEALTHCHECK --interval=60s --timeout=20s CMD ["jeeves", "health"]
CMD ["jeeves", "run"]
