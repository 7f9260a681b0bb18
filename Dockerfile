# One image for the operator and every agent role: `srs operator`, `srs agent --config …`.
# Build: docker build -t ghcr.io/OWNER/srs:0.1.0 .   (not buildable on the dev machines: no Docker engine)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY srs ./srs
COPY devstack ./devstack
COPY agent_runtime ./agent_runtime
COPY operator ./operator
COPY events ./events
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# A fixed non-root uid, so the pod securityContext (runAsNonRoot) holds.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin srs
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["srs"]
CMD ["--help"]
