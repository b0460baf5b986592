"""How dpl.platform.tls_cert reads what openssl says about a certificate."""

from __future__ import annotations

import calendar

import pytest

from ansible_collections.dpl.platform.plugins.modules import tls_cert

EC_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENhLuLj8U8aBmor8TXKfP+UaprOih
TgYSxV4kXAJ1bo8/9eEKi5hy706gu+n9opyCnxNMuu3zU3RvWaALm+cQsQ==
-----END PUBLIC KEY-----"""

RSA_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKZ1TF7C0u0O2iVlHUxBWwv3cX0s3oym
nUzEmmkiMwcrKDTsjoOpE3GQ/k1l/aP92nZGxZFCmDzo177Za5+VUXcCAwEAAQ==
-----END PUBLIC KEY-----"""

# OpenSSL 3.0's answer to: x509 -noout -enddate -fingerprint -sha256 -ext subjectAltName -pubkey
OPENSSL3_OUTPUT = """notAfter=Dec  8 06:00:36 2026 GMT
sha256 Fingerprint=44:0D:7D:21:92:D0:AF:8B:3B:A9:63:6A:B8:EF:89:0C:FF:BC:3F:C6:69:F2:C8:71:35:4A:D9:3E:CC:05:48:76
X509v3 Subject Alternative Name: \n    DNS:a.example.test, DNS:b.example.test
""" + EC_PUBLIC_KEY + "\n"


def test_parse_openssl_date():
    assert tls_cert.parse_openssl_date("Dec  8 06:00:36 2026 GMT") == calendar.timegm((2026, 12, 8, 6, 0, 36))
    assert tls_cert.iso(tls_cert.parse_openssl_date("Jan 31 23:59:59 2036 GMT")) == "2036-01-31T23:59:59Z"
    with pytest.raises(ValueError):
        tls_cert.parse_openssl_date("2026-12-08 06:00:36")


def test_parse_x509_output():
    info = tls_cert.parse_x509_output(OPENSSL3_OUTPUT)
    assert info["domains"] == ["a.example.test", "b.example.test"]
    assert info["not_after"] == calendar.timegm((2026, 12, 8, 6, 0, 36))
    assert info["fingerprint_sha256"].startswith("44:0D:7D")
    assert info["public_key"] == EC_PUBLIC_KEY


def test_parse_x509_output_of_openssl_1_1():
    # OpenSSL 1.1 spells the fingerprint label in capitals.
    info = tls_cert.parse_x509_output(OPENSSL3_OUTPUT.replace("sha256 Fingerprint", "SHA256 Fingerprint"))
    assert info["fingerprint_sha256"].startswith("44:0D:7D")


def test_a_certificate_without_names_has_none():
    text = OPENSSL3_OUTPUT.replace("X509v3 Subject Alternative Name: \n    DNS:a.example.test, DNS:b.example.test\n",
                                   "No extensions in certificate\n")
    assert tls_cert.parse_x509_output(text)["domains"] == []


def test_key_type_of():
    assert tls_cert.key_type_of(EC_PUBLIC_KEY) == "ec"
    assert tls_cert.key_type_of(RSA_PUBLIC_KEY) == "rsa"


def test_openssl_config_makes_a_tls_server_leaf():
    text = tls_cert.openssl_config(["a.example.test", "b.example.test"], "ec")
    assert "CN = a.example.test\n" in text
    assert "subjectAltName = DNS:a.example.test,DNS:b.example.test\n" in text
    assert "basicConstraints = critical,CA:FALSE\n" in text
    assert "keyUsage = critical,digitalSignature\n" in text
    assert "extendedKeyUsage = serverAuth\n" in text
    rsa = tls_cert.openssl_config(["a.example.test"], "rsa")
    assert "keyUsage = critical,digitalSignature,keyEncipherment\n" in rsa
