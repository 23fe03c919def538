# syntax=docker/dockerfile:1
# k3s-autoscaler image: the CronJob of roles/k3s_manifests runs `ansible-playbook .../autoscale.yml` in it.
# NOT built on our build machines (no container engine there); tests/test_container_and_ci_files.py parse-checks it.
#   docker build -t k3s-autoscaler:latest .
#   docker run --rm -v "$PWD/inventories/local:/etc/k3s-autoscaler:ro" k3s-autoscaler:latest \
#     -i /etc/k3s-autoscaler/hosts.yml /app/playbooks/autoscale.yml --check
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: pinned Python requirements into a venv, the k3s.autoscaler collection built and installed ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.txt ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-compile -r requirements.txt
COPY collections/ansible_collections/k3s/autoscaler/ /src/collection/
RUN /opt/venv/bin/ansible-galaxy collection build /src/collection --output-path /tmp/dist \
 && /opt/venv/bin/ansible-galaxy collection install --offline --no-deps \
      -p /opt/ansible/collections /tmp/dist/k3s-autoscaler-*.tar.gz
# The `ansible` package bundles ~100 collections; keep the ones the autoscaler uses (kubernetes.core, amazon.aws,
# community.general) to keep the runtime slim.
RUN cd /opt/venv/lib/python3.11/site-packages/ansible_collections \
 && for ns in */; do case "$ns" in amazon/|kubernetes/|community/) ;; *) rm -rf "$ns" ;; esac; done \
 && for c in community/*/; do [ "$c" = community/general/ ] || rm -rf "$c"; done \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

# ---- runtime: slim, non-root (UID 10001, as runAsUser in the CronJob), read-only root filesystem friendly -------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="k3s-autoscaler" \
      org.opencontainers.image.description="Ansible-native node autoscaler for k3s on EC2 (one cycle per run)" \
      org.opencontainers.image.licenses="GPL-3.0-or-later"
RUN groupadd --system --gid 10001 autoscaler \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin autoscaler
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/ansible/collections /opt/ansible/collections
COPY playbooks/autoscale.yml /app/playbooks/autoscale.yml
# HOME and Ansible's temp dirs on /tmp (an emptyDir in the CronJob): the root filesystem stays read-only.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    ANSIBLE_COLLECTIONS_PATH=/opt/ansible/collections \
    ANSIBLE_LOCAL_TEMP=/tmp/.ansible/tmp \
    ANSIBLE_REMOTE_TEMP=/tmp/.ansible/tmp \
    ANSIBLE_RETRY_FILES_ENABLED=false \
    ANSIBLE_HOST_KEY_CHECKING=false \
    ANSIBLE_INVENTORY=/etc/k3s-autoscaler/hosts.yml \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["ansible-playbook"]
CMD ["/app/playbooks/autoscale.yml"]
