# Stand-in for the official `nginx` image, for scripts/compose-smoke.sh where no image
# registry is reachable: Debian's nginx on a local Debian root filesystem. What compose.yaml
# and deploy/web/Dockerfile rely on is the same: /etc/nginx/conf.d/*.conf in the http
# context, /usr/share/nginx/html, logs on stdout/stderr, curl for healthchecks.
ARG BASE=chat-smoke/debian:local
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx curl >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/nginx/sites-enabled/default \
 && mkdir -p /usr/share/nginx/html \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
