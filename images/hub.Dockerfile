# The hub: FastAPI + DuckDB, with the built dashboard. Runs as a non-root user.
# Build from the repository root:  docker build -f images/hub.Dockerfile -t kubeweir/hub:0.1.0 .

FROM node:20.19.5-bookworm-slim AS front
WORKDIR /src/front
COPY front/package.json front/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY front/ ./
RUN npm run build

FROM python:3.11.14-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libxml2-dev libxmlsec1-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY kubeweir/ kubeweir/
COPY sniffer/ sniffer/
COPY redaction/ redaction/
COPY hub/ hub/
# setup.py compiles the hot modules (kubeweir/_native.py) with mypyc into the wheel
RUN python -m venv /opt/kubeweir && /opt/kubeweir/bin/pip install --no-cache-dir .

FROM python:3.11.14-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxmlsec1-openssl xmlsec1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 kubeweir \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kubeweir
COPY --from=build /opt/kubeweir /opt/kubeweir
COPY --from=front /src/front/dist /opt/kubeweir/front/dist
ENV PATH=/opt/kubeweir/bin:$PATH \
    KUBEWEIR_HUB_FRONT_DIST=/opt/kubeweir/front/dist \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["kubeweir"]
CMD ["hub", "--config=/etc/kubeweir/hub.yaml"]
