package redistest

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of masters without replicas started by
// StartCluster.
type Cluster struct {
	// Nodes are the masters, in the order they were given to
	// redis-cli --cluster create.
	Nodes []*Server
}

// StartCluster starts n (>= 3) cluster-enabled masters, assigns all slots
// with redis-cli --cluster create and waits until every node reports
// cluster_state:ok. The nodes stop at cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, got %d", n)
	}
	cli := lookup(t, "redis-cli")
	c := &Cluster{}
	for range n {
		c.Nodes = append(c.Nodes, startClusterNode(t))
	}
	args := []string{"--cluster", "create"}
	for _, s := range c.Nodes {
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range c.Nodes {
		for {
			r, _ := s.Do("CLUSTER", "INFO")
			if str, _ := r.(string); strings.Contains(str, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster not ok after 20s: %v", r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

func startClusterNode(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: lookup(t, "redis-server"), dir: t.TempDir(), args: []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "2000",
	}}
	var err error
	for range 5 {
		if s.port, err = freePort(true); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start cluster node: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// CommandCalls sums Server.CommandCalls over all nodes.
func (c *Cluster) CommandCalls(cmd string) int {
	n := 0
	for _, s := range c.Nodes {
		n += s.CommandCalls(cmd)
	}
	return n
}

// ResetStats runs CONFIG RESETSTAT on every node.
func (c *Cluster) ResetStats() {
	for _, s := range c.Nodes {
		s.ResetStats()
	}
}

// Do sends a command to the first node and follows one MOVED redirection.
func (c *Cluster) Do(args ...string) (any, error) {
	r, err := Do(c.Nodes[0].Addr(), args...)
	var e *Error
	if errors.As(err, &e) && strings.HasPrefix(e.Msg, "MOVED ") {
		f := strings.Fields(e.Msg)
		if len(f) == 3 {
			return Do(f[2], args...)
		}
	}
	return r, err
}
