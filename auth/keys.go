package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// minSecretBytes is the shortest HS256 secret accepted: RFC 7518 §3.2
// requires a key at least as long as the hash output (256 bits).
const minSecretBytes = 32

// minRSABits is the smallest RSA modulus accepted for RS256.
const minRSABits = 2048

// publicKeys are the verification keys of the asymmetric algorithms.
type publicKeys struct {
	rsa []*rsa.PublicKey   // RS256
	ec  []*ecdsa.PublicKey // ES256 (P-256)
}

// parsePublicKeys reads every PEM block of data: PUBLIC KEY (PKIX), RSA
// PUBLIC KEY (PKCS #1) or CERTIFICATE. RSA keys verify RS256 and P-256
// keys ES256; anything else is an error.
func parsePublicKeys(data []byte) (*publicKeys, error) {
	keys := &publicKeys{}
	n := 0
	for rest := data; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		key, err := blockKey(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n+1, err)
		}
		if err := keys.add(key); err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n+1, err)
		}
	}
	if n == 0 {
		return nil, errors.New("no PEM block found (expected -----BEGIN PUBLIC KEY-----)")
	}
	return keys, nil
}

func blockKey(b *pem.Block) (any, error) {
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	if strings.Contains(b.Type, "PRIVATE") {
		return nil, fmt.Errorf("%s: give volt the public key, not the private one", b.Type)
	}
	return nil, fmt.Errorf("unsupported PEM type %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", b.Type)
}

func (k *publicKeys) add(key any) error {
	switch key := key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits: at least %d are required", key.N.BitLen(), minRSABits)
		}
		k.rsa = append(k.rsa, key)
	case *ecdsa.PublicKey:
		if key.Curve != elliptic.P256() {
			return fmt.Errorf("EC key on curve %s: only P-256 (ES256) is supported", key.Curve.Params().Name)
		}
		k.ec = append(k.ec, key)
	default:
		return fmt.Errorf("unsupported key type %T (want RSA for RS256 or EC P-256 for ES256)", key)
	}
	return nil
}
