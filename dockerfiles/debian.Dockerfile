# The default agent image (alias `debian`): sshd as entrypoint, root login with the namespace's key.
# Its base is made from Debian packages when no registry can provide one (`tezt-cloud CLOUD docker base`, see
# README "Docker"); pass --build-arg BASE_IMAGE=debian:bookworm where a registry is reachable.
ARG BASE_IMAGE=tezt-cloud-base:bookworm
FROM ${BASE_IMAGE}
ARG SSH_PUBLIC_KEY
ARG BINARIES_DESTINATION_PATH=/tmp/tezt-runners
ARG COMMIT=unknown
LABEL tezt-cloud.commit=${COMMIT}
RUN mkdir -p /root/.ssh /run/sshd "${BINARIES_DESTINATION_PATH}" \
 && chmod 700 /root/.ssh \
 && printf '%s\n' "${SSH_PUBLIC_KEY}" > /root/.ssh/authorized_keys \
 && chmod 600 /root/.ssh/authorized_keys \
 && ssh-keygen -A
ENTRYPOINT ["/usr/sbin/sshd"]
CMD ["-D", "-p", "30000", "-e"]
