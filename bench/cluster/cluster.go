// Package cluster starts and controls a local replichat cluster of real chatd
// processes on loopback, each with its own data directory: what the
// end-to-end tests and the benchmark harness run against. Processes are
// killed with SIGKILL to model crashes, and restarted on the same data.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// Binaries are the paths of the built commands.
type Binaries struct {
	Chatd, Chat, Chatreplay, Chatbench string
}

// Build compiles the module's commands into dir. It locates the module from
// the current directory (tests run inside it).
func Build(ctx context.Context, dir string) (Binaries, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "./cmd/...")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("go build ./cmd/...: %w\n%s", err, out.String())
	}
	return Binaries{
		Chatd:      filepath.Join(dir, "chatd"),
		Chat:       filepath.Join(dir, "chat"),
		Chatreplay: filepath.Join(dir, "chatreplay"),
		Chatbench:  filepath.Join(dir, "chatbench"),
	}, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the replichat module")
	}
	return filepath.Dir(mod), nil
}

// Config describes a cluster to start.
type Config struct {
	Chatd    string // path of the chatd binary
	Dir      string // each replica's data is Dir/<id>, its log Dir/<id>.log
	Replicas int    // 1, 3 or 5
	// Args are extra chatd flags for every replica (e.g. cheap argon costs).
	Args []string
	// Env are extra environment variables (KEY=VALUE) for every replica
	// process, on top of this process's environment; ReplicaEnv adds more
	// for one replica (e.g. a failpoint).
	Env        []string
	ReplicaEnv map[int][]string
	// ReadyTimeout bounds the wait for a started replica to answer; default 15s.
	ReadyTimeout time.Duration
	// Debug gives every replica a --debug-addr on a free loopback port
	// (DebugAddr), so that its profiles can be fetched.
	Debug bool
}

// Cluster is a running set of chatd processes. Its methods are safe for
// concurrent use.
type Cluster struct {
	cfg        Config
	addrs      []string
	debugAddrs []string // nil unless cfg.Debug

	mu    sync.Mutex
	procs []*proc // nil entry: not running
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error
	log  *os.File
}

// Start picks free loopback ports and starts every replica, returning once
// each answers a hello.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 3
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 15 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	addrs, err := freePorts(cfg.Replicas)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, addrs: addrs, procs: make([]*proc, cfg.Replicas)}
	if cfg.Debug {
		if c.debugAddrs, err = freePorts(cfg.Replicas); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Replicas {
		if err := c.launch(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	for i := range cfg.Replicas {
		if err := c.WaitReady(ctx, i); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// freePorts asks the kernel for n free loopback ports. Another process could
// take one before chatd binds it; the start then fails clearly and the test
// can be re-run.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addrs := make([]string, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, ln)
		addrs[i] = ln.Addr().String()
	}
	return addrs, nil
}

// Addrs are the replicas' client addresses, by id.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// DebugAddr is replica id's profiling address ("" unless Config.Debug).
func (c *Cluster) DebugAddr(id int) string {
	if c.debugAddrs == nil {
		return ""
	}
	return c.debugAddrs[id]
}

// Servers is the comma-separated address list for `chat --servers`.
func (c *Cluster) Servers() string { return strings.Join(c.addrs, ",") }

// DataDir is replica id's data directory.
func (c *Cluster) DataDir(id int) string { return filepath.Join(c.cfg.Dir, strconv.Itoa(id)) }

// LogPath is the file replica id's stderr goes to (appended across restarts).
func (c *Cluster) LogPath(id int) string { return filepath.Join(c.cfg.Dir, strconv.Itoa(id)+".log") }

// Peers is the --peers flag value of this cluster.
func (c *Cluster) Peers() string {
	parts := make([]string, len(c.addrs))
	for i, a := range c.addrs {
		parts[i] = fmt.Sprintf("%d=%s", i, a)
	}
	return strings.Join(parts, ",")
}

func (c *Cluster) args(id int) []string {
	args := []string{"--id", strconv.Itoa(id), "--data", c.DataDir(id)}
	if len(c.addrs) == 1 {
		args = append(args, "--listen", c.addrs[0])
	} else {
		args = append(args, "--peers", c.Peers())
	}
	if c.debugAddrs != nil {
		args = append(args, "--debug-addr", c.debugAddrs[id])
	}
	return append(args, c.cfg.Args...)
}

func (c *Cluster) launch(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[id]; p != nil {
		select {
		case <-p.done: // it exited on its own (a crash); start it again
		default:
			return fmt.Errorf("replica %d is already running", id)
		}
	}
	logf, err := os.OpenFile(c.LogPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open replica %d log: %w", id, err)
	}
	cmd := exec.Command(c.cfg.Chatd, c.args(id)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(c.cfg.Env)+len(c.cfg.ReplicaEnv[id]) > 0 {
		cmd.Env = append(append(os.Environ(), c.cfg.Env...), c.cfg.ReplicaEnv[id]...)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start replica %d: %w", id, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs[id] = p
	return nil
}

// Restart starts replica id again on its data directory and waits until it
// answers (it may answer as a backup that is still catching up).
func (c *Cluster) Restart(ctx context.Context, id int) error {
	if err := c.launch(id); err != nil {
		return err
	}
	return c.WaitReady(ctx, id)
}

// Running reports whether replica id's process is alive.
func (c *Cluster) Running(id int) bool {
	c.mu.Lock()
	p := c.procs[id]
	c.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill crashes replica id with SIGKILL and reaps it.
func (c *Cluster) Kill(id int) error { return c.signal(id, syscall.SIGKILL) }

// Stop shuts replica id down cleanly with SIGTERM and waits for it; a
// non-zero exit is an error.
func (c *Cluster) Stop(id int) error { return c.signal(id, syscall.SIGTERM) }

func (c *Cluster) signal(id int, sig syscall.Signal) error {
	c.mu.Lock()
	p := c.procs[id]
	c.procs[id] = nil
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("replica %d is not running", id)
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("replica %d did not exit within 30s of %s", id, sig)
	}
	if sig == syscall.SIGKILL {
		return nil
	}
	if p.err != nil {
		return fmt.Errorf("replica %d exit: %w (log %s)", id, p.err, c.LogPath(id))
	}
	return nil
}

// Exited returns replica id's exit error once it has exited on its own, or
// nil and false while it runs.
func (c *Cluster) Exited(id int) (error, bool) {
	c.mu.Lock()
	p := c.procs[id]
	c.mu.Unlock()
	if p == nil {
		return nil, false
	}
	select {
	case <-p.done:
		return p.err, true
	default:
		return nil, false
	}
}

// Pid is replica id's process id, 0 if it is not running.
func (c *Cluster) Pid(id int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[id]; p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// WaitReady waits until replica id answers a hello.
func (c *Cluster) WaitReady(ctx context.Context, id int) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	for {
		if err, exited := c.Exited(id); exited {
			return fmt.Errorf("replica %d exited during start-up: %v; log %s:\n%s", id, err, c.LogPath(id), tail(c.LogPath(id)))
		}
		if _, err := Hello(ctx, c.addrs[id]); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %d not answering on %s: %w; log %s:\n%s", id, c.addrs[id], ctx.Err(), c.LogPath(id), tail(c.LogPath(id)))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Hello connects to addr and returns the replica's hello answer.
func Hello(ctx context.Context, addr string) (wire.HelloOK, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return wire.HelloOK{}, err
	}
	conn := wire.NewConn(nc, 0)
	defer conn.Close()
	return conn.Handshake(dctx, wire.Hello{Role: wire.RoleClient, ClientID: "cluster-probe", Software: "replichat-cluster"})
}

// Close kills every running replica.
func (c *Cluster) Close() {
	for id := range c.procs {
		if c.Running(id) {
			c.Kill(id)
		}
	}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 4096
	if st, err := f.Stat(); err == nil && st.Size() > max {
		f.Seek(st.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
