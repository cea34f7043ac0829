# The orchestrator as a container: gunicorn behind `orchestrator serve`, as a non-root user.
#   docker build -t orchestrator .
#   docker run -e DATABASE_URL=postgresql://... -e ORCHESTRATOR_MIGRATE_ON_START=true \
#       -v $PWD/instructors.yaml:/etc/orchestrator/instructors.yaml \
#       -e ORCHESTRATOR_INSTRUCTOR_CONFIG=/etc/orchestrator/instructors.yaml -p 8000:8000 orchestrator
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ORCHESTRATOR_LOG_DIR=/var/lib/orchestrator/logs \
    ORCHESTRATOR_QUOTA_PROFILES=/app/quota_profiles

WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/orchestrator --create-home orchestrator
COPY quota_profiles ./quota_profiles
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

USER orchestrator
WORKDIR /var/lib/orchestrator
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["orchestrator", "serve", "--host", "0.0.0.0", "--port", "8000"]
