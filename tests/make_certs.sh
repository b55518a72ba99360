#!/usr/bin/env bash
# make_certs.sh DIR: the TLS tests' certificates, made at test time with the openssl
# command (no key material is committed). In DIR:
#   ca.pem ca.key                 a test CA
#   server.pem server.key         localhost + IP 127.0.0.1 (subjectAltName), signed by the CA
#   untrusted.pem untrusted.key   the same names, self-signed: no CA vouches for it
#   wronghost.pem wronghost.key   other.example only, signed by the CA
#   expired.pem expired.key       localhost, signed by the CA, valid only in 2020
#   client.pem client.key         a client certificate (clientAuth) signed by the CA
# EC P-256 keys: fast to make and to use. Idempotent: a complete DIR made by this version
# of the script is left as it is; otherwise the set is made in a scratch directory and
# moved in file by file, so an interrupted run leaves no half set behind a stamp.
set -eu

if [ "$#" -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
stamp="$dir/.complete"
if [ -f "$stamp" ] && [ "$stamp" -nt "$0" ]; then
  exit 0
fi
command -v openssl >/dev/null 2>&1 || { echo "make_certs.sh: openssl is not installed" >&2; exit 1; }

mkdir -p "$dir"
work=$(mktemp -d "$dir/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# A P-256 key in FILE.
new_key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# The extensions of each kind of certificate (openssl x509 -extfile / openssl ca -extfile).
cat >ca.ext <<'EOF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
cat >localhost.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
cat >untrusted.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
cat >wronghost.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
cat >client.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# The CA, self-signed.
new_key ca.key
openssl req -new -key ca.key -subj "/CN=ioloop test CA" -out ca.csr
openssl x509 -req -in ca.csr -signkey ca.key -days 3650 -extfile ca.ext -out ca.pem 2>/dev/null

# NAME CN EXTFILE: NAME.key and NAME.pem, signed by the CA, valid from now on.
signed() {
  new_key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$3" -out "$1.pem" 2>/dev/null
}
signed server localhost localhost.ext
signed wronghost other.example wronghost.ext
signed client "ioloop test client" client.ext

# Self-signed, the server's names: only the trust is wrong.
new_key untrusted.key
openssl req -new -key untrusted.key -subj "/CN=localhost" -out untrusted.csr
openssl x509 -req -in untrusted.csr -signkey untrusted.key -days 825 -extfile untrusted.ext \
  -out untrusted.pem 2>/dev/null

# Expired: OpenSSL 3.0's `x509 -days` cannot go negative, `openssl ca` takes any start and
# end date. Its minimal configuration: a database, a serial, where it puts its copies.
new_key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
mkdir ca-db
: >ca-db/index.txt
echo 1000 >ca-db/serial
cat >ca.cnf <<'EOF'
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = ./ca-db
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = ./ca.pem
private_key = ./ca.key
default_md = sha256
policy = anything
unique_subject = no
[ anything ]
commonName = supplied
EOF
openssl ca -batch -config ca.cnf -notext -in expired.csr -extfile localhost.ext \
  -startdate 20200101000000Z -enddate 20200102000000Z -out expired.pem 2>/dev/null

for name in ca server untrusted wronghost expired client; do
  mv -f "$name.pem" "$name.key" "$dir/"
done
touch "$stamp"
