# The helpdesk image: daphne (HTTP + WebSocket) by default; the worker runs celery from it.
FROM python:3.11-slim-bookworm

# GeoDjango loads GDAL, GEOS and PROJ at run time; libgdal32 brings all three
# (libgeos-c1v5, libproj25). Every Python requirement ships a wheel: no compiler needed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgdal32 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Static files go into the image (served by WhiteNoise). Placeholder settings select
# production mode; collectstatic connects to neither the database nor Redis.
RUN DJANGO_SECRET_KEY=collectstatic-only \
    DATABASE_URL=postgis://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput -v 0 \
    && useradd --system --uid 10001 --no-create-home --home-dir /app helpdesk \
    && mkdir -p var/media \
    && chown -R helpdesk:helpdesk var

USER helpdesk
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "helpdesk.asgi:application"]
