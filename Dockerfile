# cordon serve: the HTTP service in a container (Debian 12, the distribution cordon is tested on).
#
#   docker build -t cordon:0.1.0 .
#
# The container must be allowed to build sandboxes: see the README, "Running the service on a
# cluster", for the docker run flags and deploy/kubernetes/ for a Kubernetes Deployment.

# --- Bun, installed the way scripts/setup installs it (npm's `bun` package), pinned to the
# version cordon is tested with: Bun.spawn's uid/gid drop, which cordon relies on to start
# every run as its own uid, is verified on 1.4.5 (older releases ignored it).
FROM debian:bookworm-slim AS bun
ARG BUN_VERSION=1.4.5
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm \
 && npm install -g "bun@${BUN_VERSION}" \
 && install -m 0755 "$(npm root -g)/bun/bin/bun.exe" /usr/local/bin/bun \
 && /usr/local/bin/bun --version

# --- The application with its production dependencies only (no TypeScript, no test tools),
# exactly as the lockfile pins them.
FROM debian:bookworm-slim AS app
COPY --from=bun /usr/local/bin/bun /usr/local/bin/bun
WORKDIR /app
COPY package.json bun.lock bunfig.toml ./
RUN bun install --frozen-lockfile --production
COPY bin ./bin
COPY src ./src
COPY plugins ./plugins
COPY schema ./schema
COPY deploy/cgroup-leaf.sh ./deploy/cgroup-leaf.sh
COPY deploy/container/entrypoint.sh ./deploy/container/entrypoint.sh

# --- The runtime image: node and npm stay behind in the first stage.
FROM debian:bookworm-slim
# What the sandboxes are made of: bubblewrap (namespaces, mounts), slirp4netns (the user-mode
# network of runs with an allowlist), nftables (their firewall rules), iproute2 (the tap
# device), util-linux (setpriv drops each run to its uid, nsenter enters its namespaces),
# python3 (the python runner, and readiness's syscall probes), libseccomp2 (the per-run
# syscall filter), ca-certificates (TLS for runs allowed to reach HTTPS hosts), tini (a PID 1
# that forwards SIGTERM to serve and reaps orphans). No uidmap: neither the bwrap nor the
# rootless provider uses its setuid newuidmap, and the sandboxes see this image's /usr.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      bubblewrap slirp4netns nftables iproute2 util-linux python3 libseccomp2 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=bun /usr/local/bin/bun /usr/local/bin/bun
COPY --from=app /app /app
# A default config with nothing secret in it (Kubernetes mounts its own over /etc/cordon).
# Tokens are never baked in: mount a token file and pass --token-file, or set CORDON_TOKENS.
COPY deploy/container/config.json /etc/cordon/config.json
WORKDIR /app
# No transpiler cache: the root filesystem may be read-only (readOnlyRootFilesystem).
ENV BUN_RUNTIME_TRANSPILER_CACHE_PATH=0 \
    NODE_ENV=production
# Root on purpose: a root supervisor is what gives each run a uid and a cgroup of its own. Run
# the container in a user namespace (Kubernetes hostUsers: false, or a userns-remapped
# daemon) so that this root is not the host's.
USER root
EXPOSE 8080
# serve drains in-flight runs on SIGTERM (up to serve.drainMs), then exits 0.
STOPSIGNAL SIGTERM
# tini as PID 1; the entrypoint makes the cgroup writable and moves itself into a leaf cgroup
# (deploy/container/entrypoint.sh, deploy/cgroup-leaf.sh), then execs the service.
ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/container/entrypoint.sh", "bun", "/app/bin/cordon.ts", "serve"]
CMD ["--listen", "0.0.0.0:8080", "--config", "/etc/cordon/config.json"]
