// Package cluster starts and controls a local replichat cluster of real chatd
// processes on loopback, each with its own data directory: what the
// end-to-end tests and the benchmark harness run against. Processes are
// killed with SIGKILL to model crashes, and restarted on the same data;
// paused with SIGSTOP (Pause, Resume) to model a process that stalls past
// the failure timeout; and their data directories wiped (Wipe) to model a
// replaced disk.
//
// With Config.Proxied, every replica runs behind a fault-injecting proxy
// (package bench/netfault): chatd binds its own port (--listen) but names
// the proxy's addresses in --peers, so the replicas reach each other, and
// clients (Addrs) reach the replicas, only through the proxy, which the
// caller controls (Proxy).
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

	"github.com/replichat/replichat/bench/netfault"
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
	// Args are extra chatd flags for every replica (e.g. cheap argon costs);
	// ReplicaArgs adds more for one replica (e.g. its own --metrics-addr).
	Args        []string
	ReplicaArgs map[int][]string
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
	// Proxied starts a netfault.Proxy in front of the replicas (see the
	// package documentation): Addrs and --peers are then the proxy's
	// addresses, DirectAddrs the replicas' own.
	Proxied bool
}

// Cluster is a running set of chatd processes. Its methods are safe for
// concurrent use.
type Cluster struct {
	cfg Config
	// addrs are where clients and peers reach the replicas (the proxy's
	// addresses when proxied); direct where the replicas listen.
	addrs, direct []string
	debugAddrs    []string        // nil unless cfg.Debug
	proxy         *netfault.Proxy // nil unless cfg.Proxied

	mu    sync.Mutex
	procs []*proc // nil entry: not running
}

type proc struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited and been reaped
	err    error
	log    *os.File
	paused bool // stopped with SIGSTOP; guarded by Cluster.mu
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
	c := &Cluster{cfg: cfg, addrs: addrs, direct: addrs, procs: make([]*proc, cfg.Replicas)}
	if cfg.Proxied {
		if c.proxy, err = netfault.New(netfault.Config{Targets: addrs}); err != nil {
			return nil, err
		}
		c.addrs = c.proxy.Addrs()
	}
	if cfg.Debug {
		if c.debugAddrs, err = freePorts(cfg.Replicas); err != nil {
			c.Close()
			return nil, err
		}
	}
	for i := range cfg.Replicas {
		if err := c.launch(i, nil); err != nil {
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

// Addrs are the replicas' client addresses, by id: the proxy's when
// proxied.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// DirectAddrs are the addresses the replicas listen on, by id: Addrs unless
// proxied, and then the proxy's targets, which bypass its faults.
func (c *Cluster) DirectAddrs() []string { return append([]string(nil), c.direct...) }

// Proxy is the fault-injecting proxy in front of the replicas, nil unless
// Config.Proxied.
func (c *Cluster) Proxy() *netfault.Proxy { return c.proxy }

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

// Peers is the --peers flag value of this cluster (the proxy's addresses
// when proxied).
func (c *Cluster) Peers() string {
	parts := make([]string, len(c.addrs))
	for i, a := range c.addrs {
		parts[i] = fmt.Sprintf("%d=%s", i, a)
	}
	return strings.Join(parts, ",")
}

func (c *Cluster) args(id int) []string {
	args := []string{"--id", strconv.Itoa(id), "--data", c.DataDir(id)}
	switch {
	case c.proxy != nil:
		args = append(args, "--listen", c.direct[id], "--peers", c.Peers())
	case len(c.addrs) == 1:
		args = append(args, "--listen", c.addrs[0])
	default:
		args = append(args, "--peers", c.Peers())
	}
	if c.debugAddrs != nil {
		args = append(args, "--debug-addr", c.debugAddrs[id])
	}
	return append(append(args, c.cfg.Args...), c.cfg.ReplicaArgs[id]...)
}

func (c *Cluster) launch(id int, extra []string) error {
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
	cmd := exec.Command(c.cfg.Chatd, append(c.args(id), extra...)...)
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
	return c.RestartWith(ctx, id)
}

// RestartWith is Restart with extra chatd flags for this start only (e.g.
// --repair).
func (c *Cluster) RestartWith(ctx context.Context, id int, extra ...string) error {
	if err := c.launch(id, extra); err != nil {
		return err
	}
	return c.WaitReady(ctx, id)
}

// Args are the chatd flags replica id starts with (its --id, --data and
// --peers, then Config.Args and ReplicaArgs), for a test that runs chatd on
// the replica's directory itself.
func (c *Cluster) Args(id int) []string { return c.args(id) }

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
	if sig != syscall.SIGKILL && p.paused {
		// A stopped process acts on SIGTERM only once continued.
		p.cmd.Process.Signal(syscall.SIGCONT)
	}
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

// Pause stops replica id with SIGSTOP: it keeps its sockets (connections
// to it queue in the kernel) but does nothing until Resume.
func (c *Cluster) Pause(id int) error { return c.setPaused(id, true) }

// Resume continues replica id after Pause (SIGCONT).
func (c *Cluster) Resume(id int) error { return c.setPaused(id, false) }

func (c *Cluster) setPaused(id int, pause bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[id]
	if p == nil {
		return fmt.Errorf("replica %d is not running", id)
	}
	select {
	case <-p.done:
		return fmt.Errorf("replica %d has exited", id)
	default:
	}
	if p.paused == pause {
		return nil
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal replica %d with %s: %w", id, sig, err)
	}
	p.paused = pause
	if pause {
		// kill(2) returns before the signal is delivered: a replica on the
		// other core goes on running (and answering) for a moment, which a
		// test that probes it right away sees (CI did, under -race).
		// Pause returns only once every thread is stopped.
		if err := waitStopped(p.cmd.Process.Pid, 5*time.Second); err != nil {
			return fmt.Errorf("pause replica %d: %w", id, err)
		}
	}
	return nil
}

// waitStopped polls /proc until every thread of pid is in the stopped
// state (T), or the timeout passes.
func waitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		stopped, err := allThreadsStopped(pid)
		if err != nil {
			return err
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d not stopped after %s", pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func allThreadsStopped(pid int) (bool, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return false, fmt.Errorf("list threads of process %d: %v", pid, err)
	}
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited
			}
			return false, fmt.Errorf("read %s: %w", path, err)
		}
		// The state follows the command name, which is in parentheses and
		// may itself contain spaces or parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("parse %s: %q", path, b)
		}
		if st := b[i+2]; st != 'T' && st != 't' {
			return false, nil
		}
	}
	return true, nil
}

// Paused reports whether replica id is stopped by Pause.
func (c *Cluster) Paused(id int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[id]
	return p != nil && p.paused
}

// Wipe removes replica id's data directory, as a replaced disk would: the
// next Restart starts it empty. The replica must not be running. The
// cluster secret (cluster.secret in Config.Dir, beside the data
// directories) and the replica's log file are kept.
func (c *Cluster) Wipe(id int) error {
	if c.Running(id) {
		return fmt.Errorf("wipe replica %d: it is running", id)
	}
	if err := os.RemoveAll(c.DataDir(id)); err != nil {
		return fmt.Errorf("wipe replica %d: %w", id, err)
	}
	return nil
}

// WaitReady waits until replica id answers a hello on its own address (not
// through the proxy, so that a fault there does not hide a started
// replica).
func (c *Cluster) WaitReady(ctx context.Context, id int) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	for {
		if err, exited := c.Exited(id); exited {
			return fmt.Errorf("replica %d exited during start-up: %v; log %s:\n%s", id, err, c.LogPath(id), tail(c.LogPath(id)))
		}
		if _, err := Hello(ctx, c.direct[id]); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %d not answering on %s: %w; log %s:\n%s", id, c.direct[id], ctx.Err(), c.LogPath(id), tail(c.LogPath(id)))
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

// Close kills every running replica and closes the proxy.
func (c *Cluster) Close() {
	for id := range c.procs {
		if c.Running(id) {
			c.Kill(id)
		}
	}
	if c.proxy != nil {
		c.proxy.Close()
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
