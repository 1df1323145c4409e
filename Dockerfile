# One image for every Orderly process; docker-compose.yml picks the command:
#   worker (default):  python worker.py
#   API:               uvicorn api.app:create_app --factory --host 0.0.0.0 --port 8000
#   migrations:        alembic -c db/alembic.ini upgrade head
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Dependencies first, so editing the code does not reinstall them.
# requirements.lock pins every package to an exact version.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# The code belongs to root and is read-only for the app user; only var/ is writable.
RUN groupadd --system --gid 10001 orderly \
    && useradd --system --uid 10001 --gid orderly --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin orderly
COPY . .
RUN mkdir -p /app/var && chown orderly:orderly /app/var

USER orderly

EXPOSE 8000

CMD ["python", "worker.py"]
