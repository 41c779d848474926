package redistest_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServerLifecycle(t *testing.T) {
	s := redistest.Start(t)
	require.True(t, s.Running())
	_, err := s.Do("SET", "k", "v")
	require.NoError(t, err)
	require.Equal(t, "v", s.MustDo("GET", "k"))
	require.Nil(t, s.MustDo("GET", "missing"))
	require.Equal(t, int64(1), s.MustDo("DEL", "k"))
	_, err = s.Do("NOSUCHCOMMAND")
	var e *redistest.Error
	require.ErrorAs(t, err, &e)
	require.GreaterOrEqual(t, s.CommandCalls("set"), 1)
	s.ResetStats()
	require.Equal(t, 0, s.CommandCalls("set"))

	s.Kill()
	require.False(t, s.Running())
	_, err = s.Do("PING")
	require.Error(t, err)
	s.Restart()
	require.Equal(t, "PONG", s.MustDo("PING"))
	s.Stop()
	require.False(t, s.Running())
	s.Stop()
}

func TestExtraArgs(t *testing.T) {
	s := redistest.Start(t, redistest.WithArgs("--rename-command", "CLIENT", ""))
	_, err := s.Do("CLIENT", "ID")
	require.Error(t, err)
}

func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	require.Len(t, c.Addrs(), 3)
	for _, k := range []string{"a", "b", "c", "d"} {
		_, err := c.Do("SET", k, "v")
		require.NoError(t, err)
		r, err := c.Do("GET", k)
		require.NoError(t, err)
		require.Equal(t, "v", r)
	}
	require.Equal(t, 4, c.CommandCalls("set"))
}

func TestProxyFreeze(t *testing.T) {
	s := redistest.Start(t)
	p := redistest.NewProxy(t, s.Addr())
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	_, err = c.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line)

	p.Freeze()
	_, err = c.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = r.ReadString('\n')
	require.Error(t, err, "no reply while frozen")
	p.Unfreeze()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err = r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line)
	p.Close()
}
