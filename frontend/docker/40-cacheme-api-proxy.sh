#!/bin/sh
set -eu
dir=/tmp/nginx-cacheme
mkdir -p "$dir"
rm -f "$dir/api-proxy.conf"
if [ -z "${CACHEME_API_URL:-}" ]; then
    echo "$0: CACHEME_API_URL unset: serving the page only (the ingress routes the API)"
    exit 0
fi
# proxy_pass in a regex location takes no URI part: drop a trailing slash.
url=${CACHEME_API_URL%/}
case "$url" in
    http://*|https://*) ;;
    *) echo "$0: CACHEME_API_URL must start with http:// or https:// (got $url)" >&2; exit 1 ;;
esac
case "$url" in
    *[!A-Za-z0-9._:/-]*) echo "$0: CACHEME_API_URL has characters nginx would misread: $url" >&2; exit 1 ;;
esac
resolver=${CACHEME_API_RESOLVER:-}
if [ -z "$resolver" ] && grep -Eqs '^nameserver[[:space:]]+127\.0\.0\.11([[:space:]]|$)' /etc/resolv.conf; then
    resolver=127.0.0.11
fi
[ "$resolver" = off ] && resolver=
case "$resolver" in
    *[!A-Za-z0-9.:-]*) echo "$0: CACHEME_API_RESOLVER is not an address: $resolver" >&2; exit 1 ;;
esac
{
    # Not /metrics, /livez or /readyz: those are for Prometheus and the kubelet, not the public.
    printf 'location ~ ^/(products|cache|health|docs|openapi\\.json)(/|$) {\n'
    if [ -n "$resolver" ]; then
        # A variable makes nginx resolve the name per request (cached for `valid`)
        # instead of once at start; with no URI part the request URI passes unchanged.
        printf '    resolver %s valid=10s ipv6=off;\n' "$resolver"
        printf '    resolver_timeout 5s;\n'
        printf '    set $cacheme_api %s;\n' "$url"
        printf '    proxy_pass $cacheme_api;\n'
    else
        printf '    proxy_pass %s;\n' "$url"
    fi
    printf '    proxy_http_version 1.1;\n'
    printf '    proxy_set_header Host $host;\n'
    printf '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n'
    printf '    proxy_set_header X-Forwarded-Proto $scheme;\n'
    printf '    proxy_read_timeout 60s;\n'
    printf '}\n'
} > "$dir/api-proxy.conf"
if [ -n "$resolver" ]; then
    echo "$0: proxying the API's paths to $url (resolved through $resolver, at most 10 s old)"
else
    echo "$0: proxying the API's paths to $url (resolved once at start)"
fi
