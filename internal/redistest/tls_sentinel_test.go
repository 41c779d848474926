package redistest_test

import (
	"bufio"
	"crypto/tls"
	"strconv"
	"testing"
	"time"

	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/stretchr/testify/require"
)

func TestStartTLS(t *testing.T) {
	s := redistest.StartTLS(t)
	require.NotEqual(t, s.Addr(), s.TLSAddr())
	require.Equal(t, "PONG", s.MustDo("PING"), "plain inspection port")

	c, err := tls.Dial("tcp", s.TLSAddr(), s.Certs.ClientConfig())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line)

	_, err = tls.Dial("tcp", s.TLSAddr(), redistest.NewCerts(t).ClientConfig())
	require.Error(t, err, "another CA must not verify the server")
}

func TestStartSentinel(t *testing.T) {
	m := redistest.Start(t)
	x := redistest.StartSentinel(t, "mymaster", m)
	require.True(t, x.Running())
	require.Equal(t, []any{"127.0.0.1", strconv.Itoa(m.Port())},
		x.MustDo("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"))
	x.Stop()
	require.False(t, x.Running())
	x.Stop()
}
