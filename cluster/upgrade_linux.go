package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Upgrade asks the cluster master whose process id is pid to upgrade
// itself, as SIGUSR2 does (Master.Upgrade), and waits for the outcome: the
// new master's pid once it serves and the old master drains; an error
// wrapping ErrUpgradeAborted (the old master serves on), ErrUpgradeUnderWay
// or ErrMasterStopping otherwise. Only a process of the master's user, or
// root, is answered.
func Upgrade(ctx context.Context, pid int) (newPid int, err error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", controlAddr(pid))
	if err != nil {
		return 0, fmt.Errorf("no cluster master with pid %d answers (%w)", pid, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write([]byte("upgrade\n")); err != nil {
		return 0, fmt.Errorf("ask master %d for an upgrade: %w", pid, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if ctx.Err() != nil {
		return 0, fmt.Errorf("wait for master %d's upgrade: %w", pid, ctx.Err())
	}
	if err != nil {
		return 0, fmt.Errorf("wait for master %d's upgrade: %w", pid, err)
	}
	word, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch word {
	case "ok":
		n, err := strconv.Atoi(rest)
		if err != nil {
			return 0, fmt.Errorf("master %d: bad answer %q", pid, line)
		}
		return n, nil
	case "aborted":
		return 0, fmt.Errorf("master %d: %w: %s", pid, ErrUpgradeAborted, rest)
	case "refused":
		return 0, fmt.Errorf("master %d: %w: %s", pid, ErrUpgradeUnderWay, rest)
	case "stopping":
		return 0, fmt.Errorf("master %d: %w", pid, ErrMasterStopping)
	default:
		return 0, fmt.Errorf("master %d: %s", pid, rest)
	}
}

// controlUpgrade answers the control command "upgrade": "ok NEWPID",
// "aborted WHY", "refused WHY", "stopping" or "error WHY".
func (l *loop) controlUpgrade(c net.Conn) {
	pid, err := l.upgrade(context.Background(), "upgrade requested by a control command")
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	trim := func(err, sentinel error) string {
		return strings.TrimPrefix(strings.TrimPrefix(err.Error(), sentinel.Error()), ": ")
	}
	switch {
	case err == nil:
		fmt.Fprintf(c, "ok %d\n", pid)
	case errors.Is(err, ErrUpgradeAborted):
		fmt.Fprintf(c, "aborted %s\n", trim(err, ErrUpgradeAborted))
	case errors.Is(err, ErrUpgradeUnderWay):
		fmt.Fprintf(c, "refused %s\n", trim(err, ErrUpgradeUnderWay))
	case errors.Is(err, ErrMasterStopping):
		fmt.Fprintln(c, "stopping")
	default:
		fmt.Fprintf(c, "error %v\n", err)
	}
}

// startUpgrades readies the master's loop l for upgrades: SIGUSR2, the
// starting of new masters, and, in a new master (in is not nil), its link
// to the old one. The returned func releases them once the loop returned.
func startUpgrades(l *loop, cfg *Config, in *upgradeIn, sdEnv []string) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	var wg sync.WaitGroup
	l.up.signal = sig
	l.up.sdEnv = sdEnv
	l.sys.startMaster = func(spec masterSpec, onReady func(), onExit func(error)) (masterProcess, error) {
		return startMaster(cfg, &wg, spec, onReady, onExit)
	}
	if in != nil {
		l.up.from = in.oldPid
		l.up.child = &upChild{parent: in, oldPid: in.oldPid}
		l.holdSystemd()
		wg.Go(func() { in.watch(l) })
	}
	return func() {
		signal.Stop(sig)
		if in != nil {
			in.close()
		}
		wg.Wait()
	}
}

// osMaster is a new master started by this one.
type osMaster struct {
	cmd      *exec.Cmd
	readyR   *os.File
	handover *os.File    // write end; open until this process exits (EOF tells the new master)
	released atomic.Bool // handed over: no onExit
}

func (p *osMaster) Pid() int                   { return p.cmd.Process.Pid }
func (p *osMaster) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

func (p *osMaster) Handover() error {
	p.released.Store(true)
	if _, err := p.handover.Write([]byte{upHandoverByte}); err != nil {
		p.released.Store(false)
		return err
	}
	_ = p.readyR.Close() // ends the watching goroutine
	return nil
}

// startMaster starts cfg.Exe again as a new master with spec's sockets at
// fds 5.., the ready pipe at fd 3 and the handover pipe at fd 4.
func startMaster(cfg *Config, wg *sync.WaitGroup, spec masterSpec, onReady func(), onExit func(error)) (masterProcess, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	handR, handW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, err
	}
	cmd := exec.Command(cfg.Exe, cfg.Args...)
	cmd.Env = append(withoutUpgradeEnv(withoutWorkerEnv(cfg.Env, cfg.EnvPrefix), cfg.EnvPrefix), spec.Env...)
	cmd.ExtraFiles = append([]*os.File{readyW, handR}, spec.Files...)
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	err = cmd.Start()
	readyW.Close()
	handR.Close()
	if err != nil {
		readyR.Close()
		handW.Close()
		return nil, err
	}
	p := &osMaster{cmd: cmd, readyR: readyR, handover: handW}
	wg.Go(func() {
		var b [1]byte
		if n, _ := readyR.Read(b[:]); n == 1 && b[0] == upReadyByte {
			onReady()
			// Then EOF when it exits, or an error once Handover closed readyR.
			_, _ = io.Copy(io.Discard, readyR)
		}
		if p.released.Load() {
			return // the new master is the master now; this one never waits for it
		}
		readyR.Close()
		err := cmd.Wait()
		handW.Close()
		onExit(err)
	})
	return p, nil
}

// withoutUpgradeEnv drops the upgrade variables from env.
func withoutUpgradeEnv(env []string, prefix string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, prefix+envUpgradeFrom+"=") && !strings.HasPrefix(kv, prefix+envUpgradeSockets+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// upgradeSystemdEnv is what a new master needs to speak to systemd once it
// takes over: the notification socket and the watchdog, if this master has
// them. Read before takeSystemd removes them.
func upgradeSystemdEnv(cfg *Config) []string {
	if cfg.NoSystemd {
		return nil
	}
	var out []string
	if v := os.Getenv("NOTIFY_SOCKET"); v != "" {
		out = append(out, "NOTIFY_SOCKET="+v)
	}
	if v := os.Getenv("WATCHDOG_USEC"); v != "" {
		if p := os.Getenv("WATCHDOG_PID"); p == "" || p == strconv.Itoa(os.Getpid()) {
			out = append(out, "WATCHDOG_USEC="+v)
		}
	}
	return out
}

// upgradeIn is a new master's inheritance from the old one.
type upgradeIn struct {
	oldPid   int
	sockets  []*os.File
	addr     net.Addr
	ready    *os.File // fd 3
	handover *os.File // fd 4, non-blocking so that close interrupts a read
}

// upgradeFromEnv returns what the old master handed this new master, or
// nil when this process is no new master. It unsets the variables.
func upgradeFromEnv(cfg *Config) (*upgradeIn, error) {
	from := os.Getenv(cfg.EnvPrefix + envUpgradeFrom)
	count := os.Getenv(cfg.EnvPrefix + envUpgradeSockets)
	os.Unsetenv(cfg.EnvPrefix + envUpgradeFrom)
	os.Unsetenv(cfg.EnvPrefix + envUpgradeSockets)
	if from == "" {
		return nil, nil
	}
	cfg.Env = withoutUpgradeEnv(cfg.Env, cfg.EnvPrefix) // taken before the variables were unset
	old, err1 := strconv.Atoi(from)
	n, err2 := strconv.Atoi(count)
	if err1 != nil || err2 != nil || old < 1 || n < 1 || n > maxAdoptSlots {
		return nil, fmt.Errorf("cluster: bad upgrade variables %s%s=%q %s%s=%q", cfg.EnvPrefix, envUpgradeFrom, from, cfg.EnvPrefix, envUpgradeSockets, count)
	}
	for fd := fdUpReady; fd < fdUpSockets+n; fd++ {
		syscall.CloseOnExec(fd)
	}
	if err := syscall.SetNonblock(fdUpHandover, true); err != nil {
		return nil, fmt.Errorf("cluster: upgrade: handover pipe: %w", err)
	}
	in := &upgradeIn{oldPid: old, ready: os.NewFile(fdUpReady, "upgrade ready"), handover: os.NewFile(fdUpHandover, "upgrade handover")}
	for i := range n {
		// os.NewFile keeps the socket's flags as they are (the old
		// generation's workers accept on it in non-blocking mode), and so
		// does File.Fd later for a File made that way.
		f := os.NewFile(uintptr(fdUpSockets+i), "socket")
		ln, err := net.FileListener(f)
		if err != nil {
			closeFiles(append(in.sockets, f))
			return nil, fmt.Errorf("cluster: upgrade: inherited socket %d: %w", i+1, err)
		}
		if in.addr == nil {
			in.addr = ln.Addr()
		}
		_ = ln.Close() // a duplicate: the socket stays open in f
		in.sockets = append(in.sockets, f)
	}
	// One shared socket, or one per slot the old master had, spare ones
	// (MaxWorkers) included: the first Workers are this master's slots,
	// the others its spare or retired ones (scale.go).
	if len(in.sockets) != 1 && (len(in.sockets) < cfg.Workers || len(in.sockets) > maxAdoptSlots) {
		closeFiles(in.sockets)
		return nil, fmt.Errorf("cluster: upgrade: %d sockets inherited for %d workers: %w", len(in.sockets), cfg.Workers, ErrSocketCount)
	}
	if len(in.sockets) > 1 {
		cfg.MaxWorkers = len(in.sockets)
		for _, f := range in.sockets[:cfg.Workers] {
			// A slot the old master had not in use (spare, bound only)
			// is one of this master's: it listens from now on.
			if !isListening(f) {
				if err := listenFile(f); err != nil {
					closeFiles(in.sockets)
					return nil, fmt.Errorf("cluster: upgrade: listen on an inherited socket: %w", err)
				}
			}
		}
	}
	return in, nil
}

// Ready tells the old master that every slot has a ready worker.
func (in *upgradeIn) Ready() error {
	_, err := in.ready.Write([]byte{upReadyByte})
	return err
}

// watch reads the handover pipe: the handover byte, then EOF when the old
// master exits (or EOF alone, when it died first). It returns once the
// pipe is at EOF or closed.
func (in *upgradeIn) watch(l *loop) {
	var b [1]byte
	n, err := in.handover.Read(b[:])
	if n == 1 && b[0] == upHandoverByte {
		_ = in.ready.Close()
		l.send(evUpHandover{})
		_, err = io.Copy(io.Discard, in.handover)
	}
	if err == nil || errors.Is(err, io.EOF) {
		// The pipe's end closes a moment before the kernel hands this
		// process to a new parent (systemd, under systemd): MAINPID= must
		// name a child of systemd's, which it can wait for.
		for range 200 {
			if os.Getppid() != in.oldPid {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		l.send(evUpParentGone{})
	}
}

func (in *upgradeIn) close() {
	_ = in.handover.Close()
	_ = in.ready.Close()
}
