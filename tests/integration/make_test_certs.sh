#!/usr/bin/env bash
# A throwaway certificate authority and a server certificate signed by it, for the TLS tests:
#
#   make_test_certs.sh DIR   writes DIR/ca.crt, DIR/ca.key, DIR/server.crt, DIR/server.key
#
# The server certificate is valid for DNS:localhost and IP:127.0.0.1 (so libpq's verify-full
# accepts either as the host) for two days. EC P-256 keys keep it fast. Each call makes a new
# CA, so two directories never trust each other's certificates.
set -euo pipefail

dir="$1"
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=pgtenant test CA $(date +%s%N)" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.crt server.crt
