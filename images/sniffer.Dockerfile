# The node agent: AF_PACKET and eBPF capture (Debian's bcc), parsers, redaction, spool.
# It needs root inside the container for raw sockets and BPF; the DaemonSet grants only
# NET_RAW, NET_ADMIN, BPF and PERFMON (plus SYS_PTRACE/SYS_ADMIN for TLS capture).
# bcc compiles against the node kernel: it uses the node's BTF where the kernel has it,
# and otherwise the node's headers mounted read-only at /lib/modules and /usr/src.
# Build from the repository root:  docker build -f images/sniffer.Dockerfile -t kubeweir/sniffer:0.1.0 .

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
 && apt-get install -y --no-install-recommends python3-bpfcc libpcap0.8 libxmlsec1-openssl iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/kubeweir /opt/kubeweir
RUN ln -s /usr/lib/python3/dist-packages/bcc /opt/kubeweir/lib/python3.11/site-packages/bcc
ENV PATH=/opt/kubeweir/bin:$PATH PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["kubeweir"]
CMD ["sniff"]
