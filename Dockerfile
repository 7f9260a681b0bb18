# One image for the operator and every agent role: `srs operator`, `srs agent --config …`.
#
# Build with `make image`: it builds srs and exactly the versions of requirements.lock
# (hashes checked) as wheels on the host (build/wheels/, nothing else in it) and then runs
# `docker build`, so nothing inside the build touches the network and the image holds the
# locked versions. The offline classifier's compiled step (native/) is a wheel of its own,
# built with the host's cargo for the host's Python. BASE_IMAGE is any Debian-like image with
# the host's Python minor version (3.11) and the venv module: by default the official slim
# Python image; machines without a registry use a base built from Debian packages (`make
# image` does that by itself when it has to).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
COPY build/wheels /wheels
# A self-contained virtualenv; bytecode compiled now, because the running container has a
# read-only root filesystem and cannot write __pycache__.
RUN python3 -m venv /opt/srs \
 && /opt/srs/bin/pip install --no-index --find-links /wheels --no-cache-dir --quiet srs srs-native \
 && /opt/srs/bin/pip uninstall --yes --quiet setuptools pip \
 && /opt/srs/bin/python -m compileall -q /opt/srs/lib > /dev/null \
 && /opt/srs/bin/srs --help > /dev/null \
 && /opt/srs/bin/python -c "import srs_native"

FROM ${BASE_IMAGE}
# A fixed non-root uid: pods run with runAsNonRoot and the restricted Pod Security level.
RUN (command -v useradd > /dev/null \
     && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin srs) \
 || echo "srs:x:10001:10001:srs:/tmp:/usr/sbin/nologin" >> /etc/passwd
COPY --from=build /opt/srs /opt/srs
ENV PATH=/opt/srs/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["srs"]
CMD ["--help"]
