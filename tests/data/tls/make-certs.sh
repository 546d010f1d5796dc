#!/bin/sh
# How tests/data/tls was made, once (tests/net_https.rs reads the files; they are committed so
# the tests need no certificate tool and no crypto dev-dependency): `sh make-certs.sh tests/data/tls`
# with OpenSSL 3. EC P-256 keys; two CAs (only the certificates kept); leaf certificates
# signed by "ca": server (repo.test, mirror.test; valid 2025 to 9999) and expired (repo.test;
# valid for one day in 2020). Test keys only: they protect nothing.
set -eu
out=$1; mkdir -p "$out"; cd "$out"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
cat > "$t/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $t/index
new_certs_dir = $t
serial = $t/serial
default_md = sha256
policy = p
copy_extensions = copy
[p]
commonName = supplied
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = \$ENV::SAN
CNF
: > "$t/index"; echo 01 > "$t/serial"
ca() { # NAME
  openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=ramboot test $1" -out "$t/$1.csr"
  SAN= openssl ca -batch -config "$t/ca.cnf" -selfsign -keyfile "$1.key" -in "$t/$1.csr" \
    -extensions v3_ca -startdate 20250101000000Z -enddate 99991231235959Z -notext -out "$1.pem"
}
leaf() { # NAME SAN START END
  openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$t/$1.csr"
  SAN=$2 openssl ca -batch -config "$t/ca.cnf" -cert ca.pem -keyfile ca.key -in "$t/$1.csr" \
    -extensions leaf -startdate "$3" -enddate "$4" -notext -out "$1.pem"
}
ca ca
ca other-ca
leaf server "DNS:repo.test,DNS:mirror.test" 20250101000000Z 99991231235959Z
leaf expired "DNS:repo.test" 20200101000000Z 20200102000000Z
rm ca.key other-ca.key
