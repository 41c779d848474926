package redistest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Certs are the PEM files of a throwaway CA and of a server certificate it
// signed for 127.0.0.1 (and localhost), made by NewCerts.
type Certs struct {
	CAFile   string // CA certificate
	CertFile string // server certificate
	KeyFile  string // server private key (PKCS #8)
	// Pool holds the CA certificate.
	Pool *x509.CertPool
}

// NewCerts generates an ECDSA P-256 CA and a server certificate for
// 127.0.0.1 and localhost, valid for a day, and writes them to
// t.TempDir(). Every call makes a new CA.
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	c, err := newCerts(t.TempDir())
	if err != nil {
		t.Fatalf("redistest: generate certificates: %v", err)
	}
	return c
}

func newCerts(dir string) (*Certs, error) {
	now := time.Now()
	serial := func() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) }

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caSerial, err := serial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvSerial, err := serial()
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: srvSerial,
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}

	c := &Certs{
		CAFile:   filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "server.crt"),
		KeyFile:  filepath.Join(dir, "server.key"),
		Pool:     x509.NewCertPool(),
	}
	c.Pool.AddCert(ca)
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{c.CAFile, "CERTIFICATE", caDER, 0o644},
		{c.CertFile, "CERTIFICATE", srvDER, 0o644},
		{c.KeyFile, "PRIVATE KEY", keyDER, 0o600},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ClientConfig returns a client TLS configuration that trusts only the CA.
func (c *Certs) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}
}

// TLSServer is a redis-server started by StartTLS. It accepts TLS
// connections on TLSAddr and, for inspection by the Server methods (Do,
// MustDo, CommandCalls, Stop...), plain connections on Addr.
type TLSServer struct {
	*Server
	// Certs are the certificates the server uses; Certs.ClientConfig
	// trusts it.
	Certs   *Certs
	tlsPort int
}

// TLSAddr returns the "127.0.0.1:port" address of the TLS port.
func (s *TLSServer) TLSAddr() string { return "127.0.0.1:" + strconv.Itoa(s.tlsPort) }

// TLSPort returns the TLS port.
func (s *TLSServer) TLSPort() int { return s.tlsPort }

// StartTLS starts a redis-server like Start, with TLS on a second free
// loopback port (certificates from NewCerts, client certificates not
// required). If redis-server was built without TLS support, StartTLS skips
// the test, or fails it when CI=true.
func StartTLS(t testing.TB, opts ...Option) *TLSServer {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	bin := lookup(t, "redis-server")
	if err := tlsSupported(bin); err != nil {
		skipOrFail(t, "redistest: %s: %v", bin, err)
	}
	certs := NewCerts(t)
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	var tlsPort int
	var err error
	for range 5 { // a free port can be taken between probing and binding
		if s.port, err = freePort(false); err != nil {
			continue
		}
		if tlsPort, err = freePort(false); err != nil {
			continue
		}
		if tlsPort == s.port {
			err = errors.New("the same free port was returned twice")
			continue
		}
		s.args = append([]string{
			"--tls-port", strconv.Itoa(tlsPort),
			"--tls-cert-file", certs.CertFile,
			"--tls-key-file", certs.KeyFile,
			"--tls-ca-cert-file", certs.CAFile,
			"--tls-auth-clients", "no",
		}, c.args...)
		if err = s.start(); err == nil {
			break
		}
		if msg := err.Error(); strings.Contains(msg, "connection listener of tls") || strings.Contains(msg, "Failed to configure TLS") {
			skipOrFail(t, "redistest: %s cannot serve TLS: %v", bin, err)
		}
	}
	if err != nil {
		t.Fatalf("redistest: start redis-server with TLS: %v", err)
	}
	t.Cleanup(s.Stop)
	return &TLSServer{Server: s, Certs: certs, tlsPort: tlsPort}
}

// errNoTLS reports a redis-server built without TLS support.
var errNoTLS = errors.New("redis-server is built without TLS support (no tls-port directive)")

// tlsSupported reports whether bin knows the tls-port directive. It runs
// bin with "--tls-port 0" followed by a directive that does not exist:
// redis-server exits at once either way, and its error names the first
// directive it rejected.
func tlsSupported(bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--tls-port", "0", "--redistest-no-such-directive", "yes").CombinedOutput()
	switch {
	case strings.Contains(string(out), "'tls-port"):
		return errNoTLS
	case strings.Contains(string(out), "redistest-no-such-directive"):
		return nil
	case err == nil:
		return errors.New("redis-server accepted an unknown directive; cannot tell whether it supports TLS")
	}
	return fmt.Errorf("probing TLS support: %w: %s", err, strings.TrimSpace(string(out)))
}

// skipOrFail skips the test, or fails it when CI=true (where every test
// needing Redis must run).
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (required when CI=true)", args...)
	}
	t.Skipf(format, args...)
}
