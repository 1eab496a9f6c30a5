# syntax=docker/dockerfile:1
#
# One image for every aidtrail service; AIDTRAIL_SERVICE picks which one a container runs:
#   docker build -t aidtrail .
#   docker run -e AIDTRAIL_SERVICE=warehouse -p 8002:8002 aidtrail
# docker-compose.yml runs pledge, warehouse, dispatch and recipient from it.

# ---- build: wheels for the package and all of its dependencies ---------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels .

# ---- runtime -------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels aidtrail

RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/aidtrail aidtrail
USER aidtrail
WORKDIR /var/lib/aidtrail

# Same settings names as everywhere else; docker-compose.yml overrides them per service.
ENV AIDTRAIL_SERVICE=pledge \
    AIDTRAIL_HOME=/var/lib/aidtrail \
    AIDTRAIL_KAFKA_BOOTSTRAP=kafka:9092 \
    AIDTRAIL_LOG_LEVEL=INFO

EXPOSE 8001 8002 8003 8004 8005

# The port follows the project's convention for the chosen service unless AIDTRAIL_PORT is set.
# The server must listen on all interfaces inside a container.
CMD ["sh", "-c", "case \"$AIDTRAIL_SERVICE\" in pledge) p=8001;; warehouse) p=8002;; dispatch) p=8003;; recipient) p=8004;; audit) p=8005;; *) echo \"unknown AIDTRAIL_SERVICE '$AIDTRAIL_SERVICE'\" >&2; exit 64;; esac; exec aidtrail serve \"$AIDTRAIL_SERVICE\" --host 0.0.0.0 --port \"${AIDTRAIL_PORT:-$p}\""]
